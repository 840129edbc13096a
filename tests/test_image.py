import io
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from veil.errors import InvalidImageError, InvalidParameterError
from veil.image import as_rgb_uint8, dense_labels, iter_image_files, load_image


def encode(arr, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


RGB = (np.arange(24 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 3)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "GIF", "JPEG"])
def test_formats_decode_to_rgb(fmt):
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = load_image(encode(RGB, fmt, **kw))
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF", "WEBP"):
        np.testing.assert_array_equal(out, RGB)


def test_modes_become_rgb():
    gray = load_image(encode(RGB[..., 0], "PNG"))
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    rgba = np.dstack([RGB, np.zeros((24, 32), np.uint8)])  # fully transparent → white
    assert (load_image(encode(rgba, "PNG")) == 255).all()
    img16 = Image.fromarray((np.arange(24 * 32).reshape(24, 32) * 50).astype(np.uint16))
    assert load_image(img16).shape == (24, 32, 3)
    cmyk = Image.fromarray(RGB).convert("CMYK")
    assert load_image(cmyk).shape == (24, 32, 3)


def test_gif_first_frame():
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert abs(int(load_image(buf.getvalue())[0, 0, 0]) - 10) <= 2


def test_exif_orientation_applied():
    img = Image.fromarray(RGB)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).shape == (32, 24, 3)


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(b"")
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(tmp_path / "zero.png")
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        load_image(b"hello, not an image")
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    truncated = encode(RGB, "PNG")[:-40]
    with pytest.raises(InvalidImageError):
        load_image(truncated)
    with pytest.raises(InvalidImageError, match="limit"):
        load_image(encode(np.zeros((100, 100, 3), np.uint8), "PNG"), max_pixels=5000)
    with pytest.raises(InvalidParameterError):
        load_image(RGB, max_pixels=0)


def test_huge_dimensions_refused_before_decoding():
    # A PNG header claiming 100k × 100k pixels: refused from the header alone.
    big = Image.new("1", (1, 1))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width/height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the header valid
    with pytest.raises(InvalidImageError, match="limit"):
        load_image(bytes(data))


def test_as_rgb_uint8_validation():
    assert as_rgb_uint8(np.zeros((3, 4))).shape == (3, 4, 3)
    assert as_rgb_uint8(np.ones((3, 4, 4), np.float32)).max() == 255
    with pytest.raises(InvalidImageError, match=r"\[0, 1\]"):
        as_rgb_uint8(np.full((3, 4, 3), 2.0))
    with pytest.raises(InvalidImageError):
        as_rgb_uint8(np.zeros((3, 4, 5)))
    with pytest.raises(InvalidImageError):
        as_rgb_uint8(np.zeros((0, 4, 3), np.uint8))


def test_input_array_not_modified():
    arr = RGB.copy()
    out = load_image(arr)
    out[...] = 0
    np.testing.assert_array_equal(arr, RGB)


def test_iter_image_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x.png").write_bytes(encode(RGB, "PNG"))
    (tmp_path / "a" / "b" / "y.JPG").write_bytes(encode(RGB, "JPEG"))
    (tmp_path / "a" / "notes.txt").write_text("hi")
    items = iter_image_files([tmp_path / "a"])
    assert [str(r) for _, r in items] == ["b/y.JPG", "x.png"]


def test_streamed_png_round_trips_across_strips(tmp_path):
    """save_delivered / save_mask encode strip by strip: the files decode to the exact arrays."""
    from veil.image import save_delivered, save_mask

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (600, 37, 3), dtype=np.uint8)  # 600 rows: several strips
    mask = rng.random((600, 37)) > 0.5
    save_delivered(img, tmp_path / "d.png")
    save_mask(mask, tmp_path / "m.png")
    with Image.open(tmp_path / "d.png") as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), img)
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), np.where(mask, 255, 0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=1, max_size=60).flatmap(
    lambda xs: st.sampled_from([np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]).map(lambda t: (xs, t))))
def test_dense_labels_is_unique_with_its_inverse(case):
    xs, dtype = case
    arr = np.array(xs, dtype=np.int64)
    arr = arr % (np.iinfo(dtype).max + 1) if dtype == np.uint8 else arr
    arr = arr.astype(dtype).reshape(1, -1)
    values, index = dense_labels(arr)
    want, inverse = np.unique(arr, return_inverse=True)
    assert values.dtype == arr.dtype and index.shape == arr.shape
    np.testing.assert_array_equal(values, want)
    np.testing.assert_array_equal(index.ravel(), inverse.ravel())
    np.testing.assert_array_equal(values[index], arr)


def test_dense_labels_falls_back_to_a_sort_for_sparse_or_negative_values():
    for arr in (np.array([[0, 10**12, 5]]), np.array([[-3, 2, -3]]), np.array([[0.5, 0.25, 0.5]])):
        values, index = dense_labels(arr)
        np.testing.assert_array_equal(values, np.unique(arr))
        np.testing.assert_array_equal(values[index], arr)
    values, index = dense_labels(np.zeros((0, 4), np.int32))
    assert values.size == 0 and index.shape == (0, 4)
