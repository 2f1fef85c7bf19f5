"""Pictures as phones and apps make them, built with Pillow in the tests: a JPEG with GPS, the
phone's make and model and a maker note; a PNG with text and eXIf chunks; a WebP with EXIF and
XMP; a photo taken sideways (orientation 6). Each plants markers a raw byte search can find."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, PngImagePlugin

GPS_IFD, EXIF_IFD = 0x8825, 0x8769
MODEL = "SecretPhone X9"
MAKER_NOTE = b"MAKERNOTE-serial-8842"
COMMENT = "taken at 12 Rue des Lilas"
XMP_GPS = "48,51.5N"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'exif:GPSLatitude="48,51.5N" exif:GPSLongitude="2,21.1E" tiff:Model="SecretPhone X9"/>'
       b'</rdf:RDF></x:xmpmeta>')
# Every byte string planted somewhere in the fixtures: none may be in a stored or served picture.
MARKERS = (MODEL.encode(), MAKER_NOTE, COMMENT.encode(), XMP_GPS.encode(), b"GPSLatitude", b"Exif\x00\x00",
           b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"XMP ", b"xmpmeta")


def exif_with_location() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SecretMaker"
    exif[0x0110] = MODEL
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 21.0, 6.0)})
    exif.get_ifd(EXIF_IFD)[0x927C] = MAKER_NOTE
    return exif


def scene(size=(64, 48), mode="RGB") -> Image.Image:
    """Four quadrants in clearly different colours, so a picture turned the wrong way shows."""
    width, height = size
    image = Image.new("RGB", size, (240, 240, 240))
    image.paste((220, 30, 30), (0, 0, width // 2, height // 2))        # red top left
    image.paste((30, 160, 40), (width // 2, 0, width, height // 2))    # green top right
    image.paste((30, 40, 200), (0, height // 2, width // 2, height))   # blue bottom left
    return image.convert(mode)


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    return encoded(scene(), "JPEG", quality=95, exif=exif_with_location().tobytes(), comment=COMMENT.encode())


def png_with_text_chunks() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", COMMENT)                          # tEXt
    info.add_itxt("Description", COMMENT, lang="en")          # iTXt
    info.add_text("Location", COMMENT, zip=True)               # zTXt
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())          # XMP in iTXt
    return encoded(scene(mode="RGBA"), "PNG", pnginfo=info, exif=exif_with_location().tobytes())  # eXIf


def webp_with_exif_and_xmp() -> bytes:
    return encoded(scene(), "WEBP", quality=95, exif=exif_with_location().tobytes(), xmp=XMP)


def jpeg_with_depth_map() -> bytes:
    """A phone's multi-picture JPEG (MPO): the photo, then a second picture (here a depth map),
    each with EXIF. Opened as a JPEG it reads as two frames."""
    depth = Image.new("RGB", (64, 48), (5, 5, 5))
    return encoded(scene(), "MPO", save_all=True, append_images=[depth], exif=exif_with_location().tobytes())


def jpeg_turned(orientation: int = 6) -> bytes:
    """A phone held upright takes a landscape sensor picture and says 'turn me' (6: 90° clockwise).
    Stored pixels: the scene rotated 90° counter-clockwise; a viewer honouring the tag shows `scene()`."""
    exif = exif_with_location()
    exif[0x0112] = orientation
    return encoded(scene().transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())


def tiny_png() -> bytes:
    return encoded(scene((8, 8)), "PNG")


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes that declare a picture of width x height pixels (10 gigapixels by default)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)  # the first rows; a decoder would go on to all of them
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def jpeg_with_scans_repeated(repeats: int, size=(64, 48)) -> bytes:
    """A progressive JPEG whose last scan comes `repeats` times more: a valid file libjpeg decodes
    pass after pass (a CPU bomb when the picture is large and the repeats many)."""
    data = encoded(scene(size), "JPEG", progressive=True, quality=50)
    last = data.rfind(b"\xff\xda")  # 0xFF 0xDA never occurs inside compressed data
    return data[:-2] + data[last:-2] * repeats + b"\xff\xd9"


def has_metadata(data: bytes) -> list[str]:
    """What a picture still carries: Pillow's reading and a raw search for the planted markers."""
    found = []
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if len(image.getexif()):
            found.append(f"exif {dict(image.getexif())}")
        found += [f"info {key}" for key in image.info if key not in ("dpi", "jfif", "jfif_version", "jfif_unit",
                                                                      "jfif_density", "progression", "progressive",
                                                                      "loop", "background", "duration", "timestamp",
                                                                      "aspect", "gamma", "transparency")]
    found += [f"bytes {marker!r}" for marker in MARKERS if marker in data]
    return found
