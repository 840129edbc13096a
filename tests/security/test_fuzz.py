"""Property-based tests of the two invariants: no crash, and no unsafe pixel delivered unobscured.

Hypothesis draws image files (shape, mode, format, frame count, which frames carry the unsafe
patch, metadata, trailing bytes) and classifier outputs (NaN, infinities, negatives, values
above 1, wrong shapes) and checks what Veil writes or returns.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from tests.hostile import (
    Garbage,
    MagentaClassifier,
    calm,
    exif_with_thumbnail,
    magenta_pixels,
    with_patch,
)
from veil.output import ResultWriter
from veil.pipeline import SafeguardConfig, Safeguarder, _broken_promise
from veil.scan import scan_file

FAST = {"segmentation": "felzenszwalb", "rationale": None, "max_depth": 6}
MULTI = ("GIF", "PNG", "WEBP", "TIFF")
MODES = ("RGB", "RGBA", "L", "LA", "P", "CMYK", "1", "I;16")


@st.composite
def image_files(draw) -> tuple[bytes, list[bool]]:
    """An encoded file and, per frame, whether that frame carries the magenta patch."""
    fmt = draw(st.sampled_from(("PNG", "GIF", "TIFF", "WEBP", "JPEG", "BMP")))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    n = draw(st.integers(1, 3)) if fmt in MULTI else 1
    unsafe = [draw(st.booleans()) for _ in range(n)]
    mode = draw(st.sampled_from(MODES))
    frames = []
    for k, bad in enumerate(unsafe):
        arr = calm((h, w), seed=k)
        if bad:
            arr = with_patch(arr, (0, 0, max(1, h // 2 + 1), max(1, w // 2 + 1)))
        im = Image.fromarray(arr)
        if mode == "I;16":
            im = Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257)
        elif mode != "RGB":
            im = im.convert(mode)
        frames.append(im)
    kw: dict = {}
    if n > 1:
        kw.update(save_all=True, append_images=frames[1:])
    if fmt == "JPEG" and draw(st.booleans()):
        kw["exif"] = exif_with_thumbnail(_jpeg(with_patch(calm((16, 16)))))
    if fmt == "WEBP":
        kw["lossless"] = True
    buf = io.BytesIO()
    try:
        first = frames[0]
        if fmt in ("JPEG", "WEBP", "BMP", "GIF") and first.mode not in ("RGB", "L", "P", "RGBA", "1", "LA"):
            first = first.convert("RGB")
            if n > 1:
                kw["append_images"] = [f.convert("RGB") for f in frames[1:]]
        if fmt == "JPEG" and first.mode not in ("RGB", "L", "CMYK"):
            first = first.convert("RGB")
        first.save(buf, format=fmt, **kw)
    except (OSError, ValueError, KeyError):  # a combination Pillow cannot write: its first frame as PNG
        buf = io.BytesIO()
        frames[0].convert("RGB").save(buf, format="PNG")
        unsafe = unsafe[:1]
    data = buf.getvalue()
    if draw(st.booleans()):  # trailing bytes: an unsafe PNG after the end of the image
        payload = io.BytesIO()
        Image.fromarray(with_patch(calm((16, 16)))).save(payload, format="PNG")
        data += payload.getvalue()
    return data, unsafe


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def safeguarder() -> Safeguarder:
    clf = MagentaClassifier()
    return Safeguarder(SafeguardConfig(models=(clf,), **FAST), classifiers=[clf])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(file=image_files(), keep=st.booleans())
def test_any_file_no_crash_and_nothing_unsafe_delivered(file, keep, safeguarder, tmp_path_factory):
    data, _ = file
    folder = tmp_path_factory.mktemp("fuzz")
    src = folder / "input.bin"
    src.write_bytes(data)
    writer = ResultWriter(folder / "out")
    records = scan_file(safeguarder, src, PurePosixPath("x"), writer, keep_metadata=keep)
    assert records
    delivered = sorted(p for p in (folder / "out" / "images").rglob("*") if p.is_file()) \
        if (folder / "out" / "images").exists() else []
    assert len(delivered) == sum(r["output"] is not None for r in records)
    for rec in records:
        if rec["output"] is None:
            assert rec["error"]
            continue
        with Image.open(folder / "out" / rec["output"]) as im:
            assert im.format == "PNG" and getattr(im, "n_frames", 1) == 1 and im.mode == "RGB"
            raw = (folder / "out" / rec["output"]).read_bytes()
            assert b"\xff\xd8\xff" not in raw  # no embedded JPEG (thumbnail, trailing payload)
            pixels = np.asarray(im)
        # the verdict on the delivered file, recomputed from disk: never unsafe
        assert magenta_pixels(pixels) <= 2, rec
        if rec["unsafe"]:
            assert rec["fail_closed"] or (rec["counterfactual_found"] and rec["obfuscated_fraction"] > 0)


def scores_like(shape_ok: bool):
    """Classifier outputs for a batch: right-shaped or not, with any floats (NaN, inf, negative)."""
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64, min_value=None, max_value=None)
    def build(p: np.ndarray):
        return arrays(np.float64, p.shape if shape_ok else st.sampled_from([(p.shape[0], 1), (p.shape[0], 3),
                                                                            (0, 2), (p.shape[0],)]),
                      elements=floats)
    return build


@settings(max_examples=60, deadline=None)
@given(data=st.data(), call=st.integers(0, 3), shape_ok=st.booleans())
def test_any_classifier_output_no_crash_and_never_trusted_when_invalid(data, call, shape_ok):
    unsafe_image = with_patch(calm((32, 40)))
    drawn: list[np.ndarray] = []

    def garbage(p: np.ndarray) -> np.ndarray:
        out = data.draw(scores_like(shape_ok)(p))
        drawn.append(out)
        return out

    clf = Garbage(garbage, bad=call)
    sg = Safeguarder(SafeguardConfig(models=(clf,), **FAST), classifiers=[clf])
    res = sg.run(unsafe_image)  # never raises
    assert _broken_promise(res) is None
    if drawn:
        out = drawn[0]
        invalid = out.shape[-1:] != (2,) or out.ndim != 2 or not np.all(np.isfinite(out)) \
            or out.size == 0 or out.min() < -1e-6 or out.max() > 1 + 1e-6
        if invalid:
            assert res.fail_closed and "'garbage'" in (res.error or "")
            assert magenta_pixels(res.image) == 0
    if not res.fail_closed and res.unsafe:
        assert magenta_pixels(res.image) <= 2


def test_hostile_corpus_has_what_it_claims():
    """The generated corpus really hides magenta where the tests say (a check on the checks)."""
    from tests.hostile import corpus
    from veil.image import frame_count, load_image

    files = corpus()
    for name in ("anim.gif", "anim.png", "anim.webp", "pages.tif", "stereo.mpo"):
        assert frame_count(files[name]) == 2
        assert magenta_pixels(load_image(files[name])) == 0 and magenta_pixels(load_image(files[name], frame=1)) > 100
    assert magenta_pixels(load_image(files["alpha.png"])) == 0
    rgba = np.asarray(Image.open(io.BytesIO(files["alpha.png"])))
    assert magenta_pixels(rgba[..., :3]) > 100  # a viewer that drops alpha would show it
    thumb = Image.open(io.BytesIO(files["thumb.jpg"])).getexif().get_ifd(0x8825)
    assert thumb  # the GPS IFD is there
    assert files["trailing.jpg"].count(b"IEND") == 1
