"""The pure picture module (domain/pictures.py): every accepted picture comes out rebuilt from its
pixels alone, upright and in sRGB; what cannot safely be read is refused with what to do; and
`location_in` says whether a picture reveals a place or a device, never where."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from crossline.domain.pictures import ACCEPTED, Revealed, clean, location_in, pixels_only
from crossline.errors import InvalidInput
from tests import pictures_support as pics

LIMITS = {"max_bytes": 5 * 1024 * 1024, "max_pixels": 50_000_000}
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr")


def can_save(mode: str, fmt: str) -> bool:
    try:
        pics.encoded(Image.new(mode, (2, 2)), fmt)
    except (OSError, ValueError, KeyError):
        return False
    return True


# Every mode Pillow can write in each accepted format: what a phone, an app or an attacker may send.
SAVABLE = [(mode, fmt) for fmt in ACCEPTED for mode in MODES if can_save(mode, fmt)]


def test_every_accepted_format_takes_many_modes():
    assert {fmt for _mode, fmt in SAVABLE} == set(ACCEPTED)
    assert {"P", "CMYK", "LA", "RGBA", "I;16"} <= {mode for mode, _fmt in SAVABLE}


@pytest.mark.parametrize("make", [pics.jpeg_with_gps, pics.png_with_text_chunks, pics.webp_with_exif_and_xmp,
                                  pics.jpeg_turned, pics.jpeg_with_depth_map])
def test_location_and_device_are_read_then_gone_after_cleaning(make):
    upload = make()
    assert location_in(upload) == Revealed(place=True, device=True) and location_in(upload)
    mime, cleaned = clean(upload, **LIMITS)
    assert location_in(cleaned) == Revealed() and not location_in(cleaned)
    assert pics.has_metadata(cleaned) == []
    with Image.open(io.BytesIO(cleaned)) as seen:
        assert mime == Image.MIME[seen.format] and getattr(seen, "n_frames", 1) == 1


def test_a_phones_multi_picture_jpeg_keeps_the_photo_only():
    mime, cleaned = clean(pics.jpeg_with_depth_map(), **LIMITS)
    with Image.open(io.BytesIO(cleaned)) as seen:
        assert mime == "image/jpeg" and seen.format == "JPEG" and seen.convert("RGB").getpixel((4, 4))[0] > 180


def test_what_a_picture_reveals_is_told_apart():
    model_only = Image.Exif()
    model_only[0x0110] = pics.MODEL
    assert location_in(pics.encoded(pics.scene(), "JPEG", exif=model_only.tobytes())) == Revealed(device=True)
    xmp_place = pics.XMP.replace(b' tiff:Model="SecretPhone X9"', b"")
    assert location_in(pics.encoded(pics.scene(), "WEBP", xmp=xmp_place)) == Revealed(place=True)
    assert location_in(pics.tiny_png()) == Revealed()
    # Nothing readable: nothing revealed, and never an exception the bot would have to catch.
    for data in (b"", b"junk", b"\xff\xd8\xff" + b"\x00" * 10, pics.png_bomb(), pics.jpeg_with_gps()[:100]):
        assert location_in(data) == Revealed()
    # Cut short after its EXIF, a file still carries the place: the bot tells her.
    assert location_in(pics.jpeg_with_gps()[:300]) == Revealed(place=True, device=True)


def declared_size(data: bytes, width: int, height: int) -> bytes:
    """The picture's header made to say width x height (no pixel changes: only metadata is read)."""
    if data.startswith(b"\x89PNG"):
        return data[:16] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[24:]
    frame = data.index(b"\xff\xc0")  # baseline start of frame: length, precision, height, width
    return data[:frame + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[frame + 9:]


def test_the_place_is_read_in_a_picture_of_any_size_without_decoding_it(monkeypatch):
    """A 108-megapixel phone photo (and past Pillow's own bomb limit) with GPS was said to reveal
    nothing: the pixel limit applied, and a PNG's late eXIf chunk was read by decoding the PNG."""
    huge = [declared_size(pics.jpeg_with_gps(), 12_000, 9_000), declared_size(pics.jpeg_with_gps(), 20_000, 20_000),
            declared_size(pics.png_with_text_chunks(), 20_000, 20_000)]
    monkeypatch.setattr(Image, "open", None)  # nothing is opened with Pillow, so nothing is decoded
    for data in huge:
        assert location_in(data) == Revealed(place=True, device=True)


def test_a_sideways_photo_comes_out_upright():
    _mime, cleaned = clean(pics.jpeg_turned(6), **LIMITS)
    with Image.open(io.BytesIO(cleaned)) as seen:
        assert seen.size == (64, 48) and seen.convert("RGB").getpixel((4, 4))[0] > 180  # red, top left


def test_an_icc_profile_is_applied_then_dropped():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for fmt in ACCEPTED:
        _mime, cleaned = clean(pics.encoded(pics.scene(), fmt, icc_profile=srgb), **LIMITS)
        with Image.open(io.BytesIO(cleaned)) as seen:
            assert "icc_profile" not in seen.info and seen.convert("RGB").getpixel((4, 4))[0] > 180
        assert b"sRGB" not in cleaned


def test_palette_transparency_and_cmyk_survive_as_a_person_sees_them():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.paste(1, (0, 0, 4, 8))
    _mime, cleaned = clean(pics.encoded(palette, "PNG", transparency=1), **LIMITS)
    with Image.open(io.BytesIO(cleaned)) as seen:
        assert seen.mode == "RGBA" and seen.getpixel((0, 0))[3] == 0 and seen.getpixel((7, 0)) == (255, 0, 0, 255)
    mime, cleaned = clean(pics.encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), **LIMITS)
    with Image.open(io.BytesIO(cleaned)) as seen:
        red = seen.getpixel((4, 4))
        assert mime == "image/jpeg" and seen.mode == "RGB" and red[0] > 200 and red[1] < 60


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    return pics.encoded(frames[0], fmt, save_all=True, append_images=frames[1:])


@pytest.mark.parametrize("data, message", [
    (pics.tiny_png() + b"\x00" * (5 * 1024 * 1024), r"too large \(5.1 MB; at most 5 MB each\)\. Send a screenshot"),
    (pics.png_bomb(), r"too many pixels \(at most 50 megapixels\)"),
    (pics.png_bomb(8000, 8000), "too many pixels"),  # under Pillow's warning (89 megapixels), over ours
    pytest.param(pics.png_bomb(10_000, 10_000), "too many pixels",  # between Pillow's warning and its error
                 marks=pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")),
    (pics.jpeg_with_gps()[:600], r"could not be read .* Send it again as a PNG, JPEG or WebP"),
    (pics.png_with_text_chunks()[:-40], "could not be read"),
    (b"GIF89a" + b"\x00" * 64, "must be a PNG, JPEG or WebP image"),
    (pics.encoded(pics.scene(), "BMP"), "must be a PNG, JPEG or WebP image"),  # a real picture, not accepted
    (pics.encoded(pics.scene(), "TIFF"), "must be a PNG, JPEG or WebP image"),
    (animated("PNG"), "Animated pictures are not accepted: send a screenshot"),
    (animated("WEBP"), "Animated pictures are not accepted"),
])
def test_what_cannot_be_kept_safely_is_refused_saying_what_to_do(data, message):
    with pytest.raises(InvalidInput, match=message):
        clean(data, **LIMITS)


def test_a_jpeg_of_too_many_passes_is_refused_unread_and_an_ordinary_progressive_one_kept():
    """libjpeg decodes any number of scans: 300 repeated ones in a 218 KB file of 50 megapixels took
    18 s of CPU. Counted from the markers before any decoding."""
    with pytest.raises(InvalidInput, match="too many passes to be read safely. Send a screenshot"):
        clean(pics.jpeg_with_scans_repeated(200), **LIMITS)
    # Junk between segments (libjpeg skips it to the next marker) hides no scan from the count.
    bomb = pics.jpeg_with_scans_repeated(200)
    last = bomb.rfind(b"\xff\xda")
    with pytest.raises(InvalidInput, match="too many passes"):
        clean(bomb[:last] + b"\x00junk" + bomb[last:], **LIMITS)
    assert clean(pics.jpeg_with_scans_repeated(0), **LIMITS)[0] == "image/jpeg"
    assert clean(pics.jpeg_with_scans_repeated(20), **LIMITS)[0] == "image/jpeg"


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillows_bomb_warning_made_an_error_by_a_filter_is_refused_the_same():
    with pytest.raises(InvalidInput, match="too many pixels"):
        clean(pics.png_bomb(10_000, 10_000), **LIMITS)
    assert location_in(pics.png_bomb(10_000, 10_000)) == Revealed()


def test_a_webp_may_have_a_third_of_the_pixels_as_it_takes_three_times_the_memory():
    """A 1,970-byte WebP of 50 megapixels took 1.3 GB to rebuild; a JPEG or PNG of as many, 400 MB."""
    picture = pics.scene((10, 10))
    with pytest.raises(InvalidInput, match="too many pixels"):
        clean(pics.encoded(picture, "WEBP"), max_bytes=10_000, max_pixels=299)
    assert clean(pics.encoded(picture, "WEBP"), max_bytes=10_000, max_pixels=300)[0] == "image/webp"
    assert clean(pics.encoded(picture, "PNG"), max_bytes=10_000, max_pixels=100)[0] == "image/png"


def test_a_colour_named_transparent_stays_transparent():
    """A grey or RGB PNG whose tRNS chunk names a transparent colour came out opaque."""
    for mode, clear in (("L", 0), ("RGB", (1, 2, 3))):
        picture = Image.new(mode, (10, 10), clear)
        picture.paste(255 if mode == "L" else (200, 100, 50), (5, 0, 10, 10))
        _mime, cleaned = clean(pics.encoded(picture, "PNG", transparency=clear), **LIMITS)
        with Image.open(io.BytesIO(cleaned)) as seen:
            rgba = seen.convert("RGBA")
            assert rgba.getpixel((1, 1))[3] == 0 and rgba.getpixel((8, 1))[3] == 255, mode


def test_the_limits_are_the_callers():
    with pytest.raises(InvalidInput, match="too many pixels"):
        clean(pics.tiny_png(), max_bytes=10_000, max_pixels=63)  # 8 x 8
    with pytest.raises(InvalidInput, match="too large"):
        clean(pics.tiny_png(), max_bytes=50, max_pixels=64)
    assert clean(pics.tiny_png(), max_bytes=10_000, max_pixels=64)[0] == "image/png"


def planted(image: Image.Image, fmt: str) -> bytes:
    """The picture saved with every kind of metadata its format can carry."""
    exif = pics.exif_with_location()
    exif[0x0112] = 1
    params = {"exif": exif.tobytes()}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", pics.COMMENT)
        info.add_itxt("XML:com.adobe.xmp", pics.XMP.decode())
        params["pnginfo"] = info
    elif fmt == "JPEG":
        params["comment"] = pics.COMMENT.encode()
    else:
        params["xmp"] = pics.XMP
    return pics.encoded(image, fmt, **params)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAVABLE), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2 ** 32))
def test_any_small_picture_in_any_mode_comes_out_without_metadata(mode_and_format, width, height, seed):
    mode, fmt = mode_and_format
    noise = Image.frombytes("RGBA", (width, height), random.Random(seed).randbytes(width * height * 4))
    upload = planted(noise.convert(mode), fmt)
    mime, cleaned = clean(upload, **LIMITS)
    assert mime == ACCEPTED[fmt]
    assert pics.has_metadata(cleaned) == [] and location_in(cleaned) == Revealed()
    assert pixels_only(cleaned) and not pixels_only(upload)  # served as stored; an upload never is
    with Image.open(io.BytesIO(cleaned)) as seen:
        assert seen.format == fmt and seen.size == (width, height)
    assert clean(cleaned, **LIMITS)[0] == mime  # what is stored is itself acceptable


@pytest.mark.parametrize("cut", [
    lambda: pics.png_with_text_chunks()[:-40], lambda: pics.jpeg_with_gps()[:-20],
    lambda: pics.webp_with_exif_and_xmp()[:-30]], ids=["png", "jpeg", "webp"])
def test_a_cut_short_picture_is_refused_even_where_pillow_is_told_to_read_it(cut, monkeypatch):
    """Importing Synapse's package sets Pillow's LOAD_TRUNCATED_IMAGES for the whole process (the
    full test run does so, and so would any process that loads the Synapse module)."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(InvalidInput, match="could not be read"):
        clean(cut(), max_bytes=5_000_000, max_pixels=50_000_000)
