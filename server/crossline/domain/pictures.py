"""Pictures the hub accepts, made safe to keep: decoded and re-encoded so that nothing but the
pixels survives, and a reading of what a picture would reveal about the person who took it.

A phone photo carries where it was taken (EXIF GPS, XMP), the phone's make, model and serial
(EXIF, maker notes), and often comments or text chunks an app wrote. An anonymous report must not
tell moderators where the reporter lives, so every accepted picture is rebuilt from its pixels
alone (`clean`); `location_in` tells the bot whether a picture sent in a room would give her away.

Pure: bytes in, bytes out, limits as arguments, no I/O, no global Pillow settings changed.
"""

from __future__ import annotations

import io
import math
import re
import zlib
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from crossline.errors import InvalidInput

# Pillow format name -> MIME type. Only these decoders are ever tried on untrusted bytes.
ACCEPTED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
ACCEPTED_WORDS = "a PNG, JPEG or WebP image"
GPS_IFD = 0x8825
EXIF_IFD = 0x8769
# IFD0 Make and Model; Exif IFD MakerNote, body and lens serial numbers, owner name.
DEVICE_TAGS = (0x010F, 0x0110)
DEVICE_EXIF_TAGS = (0x927C, 0xA431, 0xA435, 0xA430)
GPS_POSITION_TAGS = (1, 2, 3, 4)  # latitude ref, latitude, longitude ref, longitude
XMP_PLACE_MARKERS = (b"GPSLatitude", b"GPSLongitude", b"LocationCreated", b"LocationShown")
XMP_DEVICE_MARKERS = (b"tiff:Model", b"tiff:Make", b"SerialNumber")
# Modes kept as they are; every other mode (CMYK, palette, 16-bit, YCbCr, ...) is converted.
KEPT_MODES = {"JPEG": ("L", "RGB"), "PNG": ("L", "LA", "RGB", "RGBA"), "WEBP": ("RGB", "RGBA")}
QUALITY = 92
# Pillow decodes a WebP through libwebp's animation decoder (a canvas and a frame beside the
# picture) and its encoder keeps more copies: about 25 bytes a pixel at the peak (1.3 GB for 50
# megapixels), against 7 to 8 for a JPEG or PNG. A WebP may therefore have a third of the pixels.
WEBP_COST = 3
# A progressive JPEG is drawn in passes (scans); phones and editors write about ten, baseline ones
# one to three. libjpeg decodes every scan over the whole picture, so a small file repeating its
# last scan thousands of times keeps a CPU busy for minutes: past this many, it is refused unread.
MAX_JPEG_SCANS = 64
# In a JPEG's compressed data a 0xFF byte is followed by 0x00 (a stuffed byte), by 0xD0-0xD7 (a
# restart marker, part of the scan) or by 0xFF (fill); anything else is the next marker.
_NEXT_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


@dataclass(frozen=True)
class Revealed:
    """What a picture's metadata tells about where and with what it was taken. True as a whole
    when it reveals a place (`if location_in(data):`)."""

    place: bool = False   # a GPS position (EXIF GPS IFD or XMP location)
    device: bool = False  # the camera or phone: make, model, maker note or serial number

    def __bool__(self) -> bool:
        return self.place


def location_in(data: bytes) -> Revealed:
    """Whether the picture in `data` reveals where it was taken (`.place`) and the device that
    took it (`.device`). Never says where: only whether. Only the metadata is read, found by walking
    the file's segments or chunks: no pixel is decoded, so a picture of any size is read, quickly.
    Bytes that are not a JPEG, PNG or WebP, or whose metadata cannot be read, reveal nothing."""
    try:
        raw_exif, xmp = _metadata(data)
        exif = Image.Exif()
        if raw_exif:
            exif.load(raw_exif)
        gps, camera = exif.get_ifd(GPS_IFD), exif.get_ifd(EXIF_IFD)
    except Exception:  # noqa: BLE001 - a malformed EXIF block may fail anywhere: nothing readable
        return Revealed()
    place = any(tag in gps for tag in GPS_POSITION_TAGS) or any(m in xmp for m in XMP_PLACE_MARKERS)
    device = (any(tag in exif for tag in DEVICE_TAGS) or any(tag in camera for tag in DEVICE_EXIF_TAGS)
              or any(m in xmp for m in XMP_DEVICE_MARKERS))
    return Revealed(place=place, device=device)


def _metadata(data: bytes) -> tuple[bytes, bytes]:
    """(EXIF, XMP) as the file carries them, either empty: from a JPEG's APP1 segments before its
    first scan, a PNG's eXIf and text chunks, a WebP's EXIF and XMP chunks."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_metadata(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_metadata(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunks = dict(_riff_chunks(data))
        return chunks.get(b"EXIF", b""), chunks.get(b"XMP ", b"")
    return b"", b""


# What `clean` writes, and nothing else: a JPEG's JFIF header, tables, frame and one scan; a PNG's
# header, palette, transparency and pixel chunks; a WebP's pixel and alpha chunks.
_PIXELS_ONLY_JPEG = {0xE0, 0xDB, 0xC0, 0xC4, 0xDD}
_PIXELS_ONLY_PNG = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
_PIXELS_ONLY_WEBP = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}


def pixels_only(data: bytes) -> bool:
    """Whether the picture holds nothing but what `clean` writes (so it need not be rebuilt to be
    safe to show): any other segment or chunk, or bytes after the picture's end, and it does not."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        chunks = list(_png_chunks(data))
        size = 8 + sum(12 + len(body) for _kind, body in chunks)
        return size == len(data) and bool(chunks) and {kind for kind, _ in chunks} <= _PIXELS_ONLY_PNG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunks = list(_riff_chunks(data))
        size = 12 + sum(8 + len(body) + len(body) % 2 for _kind, body in chunks)
        return size == len(data) and bool(chunks) and {kind for kind, _ in chunks} <= _PIXELS_ONLY_WEBP
    if not data.startswith(b"\xff\xd8"):
        return False
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if marker == 0xDA:  # the one scan, then the end of the picture and of the file
            end = _NEXT_MARKER.search(data, at + 2 + length)
            return end is not None and end.start() == len(data) - 2 and data[-1] == 0xD9
        if marker not in _PIXELS_ONLY_JPEG or (marker == 0xE0 and not data[at + 4:at + 9] == b"JFIF\x00"):
            return False
        at += 2 + length
    return False


def _jpeg_metadata(data: bytes) -> tuple[bytes, bytes]:
    exif = xmp = b""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if marker in (0xDA, 0xD9) or at + 2 + length > len(data):
            break  # the first scan: no metadata of this picture after it
        body = data[at + 4:at + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00") and not exif:
            exif = body
        elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
            xmp += body
        at += 2 + length
    return exif, xmp


def _png_metadata(data: bytes) -> tuple[bytes, bytes]:
    exif = xmp = b""
    for kind, body in _png_chunks(data):
        if kind == b"eXIf" and not exif:
            exif = body
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword, _, text = body.partition(b"\x00")
            if kind == b"zTXt":
                text = _inflated(text[1:])
            elif kind == b"iTXt":
                compressed, rest = text[:1] == b"\x01", text[2:]
                text = rest.split(b"\x00", 2)[-1]  # after the language tag and the translated keyword
                text = _inflated(text) if compressed else text
            if keyword == b"XML:com.adobe.xmp":
                xmp += text
            elif keyword == b"Raw profile type exif" and not exif:  # ImageMagick: hex after three lines
                exif = bytes.fromhex("".join(text.decode("latin-1").split("\n")[3:]))
    return exif, xmp


def _png_chunks(data: bytes):
    return _chunks(data, 8, lambda at: (data[at + 4:at + 8], int.from_bytes(data[at:at + 4], "big"), at + 8), trailer=4)


def _riff_chunks(data: bytes):
    return _chunks(data, 12, lambda at: (data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little"), at + 8))


def _cut_short(data: bytes, kind: str) -> bool:
    """Whether the file ends before its picture does. Read from the bytes, because Pillow's own
    check can be switched off for the whole process (Synapse's package does so when imported)."""
    if kind == "PNG":
        return not any(chunk == b"IEND" for chunk, _body in _png_chunks(data))
    if kind == "WEBP":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    # JPEG: an end-of-picture marker after the first scan (inside a scan 0xFF is always followed by
    # 0x00 or a restart marker, so the pair cannot occur there by chance).
    first_scan = data.find(b"\xff\xda")
    return first_scan < 0 or data.find(b"\xff\xd9", first_scan) < 0


def _chunks(data: bytes, at: int, header, trailer: int = 0):
    """(kind, body) of each chunk from `at`: `header(at)` gives kind, body length and where the body
    starts; `trailer`: bytes after the body (PNG's CRC); RIFF pads bodies to an even length."""
    while at + 8 <= len(data):
        kind, length, start = header(at)
        if start + length > len(data):
            return
        yield kind, data[start:start + length]
        at = start + length + trailer + (length % 2 if not trailer else 0)


def _inflated(compressed: bytes, at_most: int = 1024 * 1024) -> bytes:
    """At most `at_most` bytes of a zlib stream: a text chunk may be a zip bomb."""
    try:
        return zlib.decompressobj().decompress(compressed, at_most)
    except zlib.error:
        return b""


def clean(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[str, bytes]:
    """The picture in `data` rebuilt from its pixels alone, as (MIME type, bytes) in its own format.

    The EXIF orientation is applied to the pixels first, colours are converted to sRGB when an
    ICC profile says otherwise, and then nothing else is kept: no EXIF, XMP, IPTC, GPS, maker
    note, comment, ICC profile or text chunk. Refused with InvalidInput (saying what to do): more
    than `max_bytes` or `max_pixels`, not a JPEG, PNG or WebP, unreadable or cut short, animated."""
    if len(data) > max_bytes:
        raise InvalidInput(f"A picture is too large ({_megabytes(len(data))}; at most {_megabytes(max_bytes)} each). "
                           "Send a screenshot or a smaller copy instead.")
    with _opened(data, max_pixels) as image:
        # Many phones write a JPEG with more pictures after it (MPO: previews, a depth map, each with
        # its own EXIF): the first is the photo, the others go.
        kind = "JPEG" if image.format == "MPO" else image.format
        if kind == "JPEG" and _jpeg_scans(data, MAX_JPEG_SCANS) > MAX_JPEG_SCANS:
            raise InvalidInput("A picture is made of too many passes to be read safely. Send a screenshot of it, "
                               "or save it again as an ordinary (not progressive) JPEG.")
        if _cut_short(data, kind):
            raise _unreadable()
        if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
            # Keeping the first frame only could drop exactly what she wanted moderators to see.
            raise InvalidInput("Animated pictures are not accepted: send a screenshot of the moment that matters.")
        try:
            pixels = _pixels(image, kind)
        except Exception as error:  # noqa: BLE001 - see _opened: hostile bytes may fail anywhere
            raise _unreadable() from error
        # Savers write only the metadata they are given, except what they take from `info` (a JPEG
        # comment, a PNG's ICC profile and transparency, a WebP's background): emptied, nothing is
        # left to carry over, and no second copy of a large photo is made for it.
        pixels.info = {}
        out = io.BytesIO()
        if kind == "JPEG":
            pixels.save(out, "JPEG", quality=QUALITY)
        elif kind == "PNG":
            pixels.save(out, "PNG", optimize=True)
        else:
            pixels.save(out, "WEBP", quality=QUALITY)
    return ACCEPTED[kind], out.getvalue()


class _opened:
    """Image.open restricted to the accepted formats, with Pillow's bomb check turned into a clear
    refusal and the caller's pixel limit checked from the header, before any pixel is decoded.

    Pillow's own check raises DecompressionBombError above twice Image.MAX_IMAGE_PIXELS (about 179
    megapixels) and only warns above it; the caller's limit (52 megapixels for reports, a third of
    it for a WebP) refuses such a picture here anyway. The warning is caught when a filter makes it
    an error, but warning filters are not changed here: they are process-wide, and other threads
    may rebuild pictures at the same time."""

    def __init__(self, data: bytes, max_pixels: int):
        self.data, self.max_pixels = data, max_pixels

    def __enter__(self) -> Image.Image:
        try:
            self.image = Image.open(io.BytesIO(self.data), formats=list(ACCEPTED))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(self.max_pixels) from None
        except Image.UnidentifiedImageError:
            raise InvalidInput(f"A picture must be {ACCEPTED_WORDS}; this file is not one.") from None
        except Exception as error:  # noqa: BLE001 - a decoder fed hostile bytes may raise anything
            raise _unreadable() from error
        width, height = self.image.size
        limit = self.max_pixels // WEBP_COST if self.image.format == "WEBP" else self.max_pixels
        if width * height > limit:
            self.image.close()
            raise _too_many_pixels(limit)
        return self.image

    def __exit__(self, *_exc) -> None:
        self.image.close()


def _jpeg_scans(data: bytes, at_most: int) -> int:
    """The scans (SOS segments) of the JPEG's first picture, counted to `at_most` + 1 at most,
    walking its markers as libjpeg does (bytes between segments skipped to the next 0xFF), so
    that none is missed; nothing is decoded. Stops at the first picture's end (EOI)."""
    scans, at = 0, 2
    while scans <= at_most and at + 1 < len(data):
        if data[at] != 0xFF or data[at + 1] == 0xFF:
            at = data.find(b"\xff", at + 1)
            if at < 0:
                break
            continue
        marker = data[at + 1]
        if marker == 0xD9:
            break
        if marker in _STANDALONE:
            at += 2
            continue
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
        if marker == 0xDA:
            scans += 1
            following = _NEXT_MARKER.search(data, at)
            if following is None:
                break
            at = following.start()
    return scans


def _pixels(image: Image.Image, kind: str) -> Image.Image:
    image.load()
    ImageOps.exif_transpose(image, in_place=True)  # in place: one copy fewer of a large photo
    upright = _in_srgb(image, image.info.get("icc_profile"))
    # A grey or colour PNG may name one colour transparent (tRNS), kept in `info`, which is not
    # written again: made an alpha channel, so what was transparent stays so.
    has_alpha = "A" in upright.mode or "transparency" in upright.info
    if upright.mode in KEPT_MODES[kind] and "transparency" not in upright.info:
        return upright
    wanted = "RGBA" if has_alpha and "RGBA" in KEPT_MODES[kind] else "RGB"
    if upright.mode in ("I;16", "I;16B", "I;16L", "I"):
        return upright.convert("I").point(lambda value: value * (1 / 256)).convert("L")  # 16-bit grey: 8-bit
    if upright.mode in ("1", "F"):
        wanted = "L"
    return upright.convert(wanted)


def _in_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Colours as the profile meant them, in sRGB, so dropping the profile changes nothing seen."""
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: the pixels as they are are the best reading there is


def _xmp(image: Image.Image) -> bytes:
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    return xmp.encode("utf-8", "replace") if isinstance(xmp, str) else bytes(xmp)


def _megabytes(size: int) -> str:
    return f"{math.ceil(size * 10 / 1024 / 1024) / 10:g} MB"  # rounded up: 5 MB and a byte is not "5 MB"


def _too_many_pixels(max_pixels: int) -> InvalidInput:
    return InvalidInput(f"A picture has too many pixels (at most {max_pixels // 1_000_000} megapixels). "
                        "Send a screenshot or a smaller copy instead.")


def _unreadable() -> InvalidInput:
    return InvalidInput(f"A picture could not be read (it may be damaged or cut short). Send it again as "
                        f"{ACCEPTED_WORDS}, or send a screenshot of it.")
