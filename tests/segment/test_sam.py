"""SAM segmenter: mask → label conversion, error paths, and a tiny random SAM end to end."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from veil.errors import InvalidParameterError
from veil.segment import SEGMENTERS, segment
from veil.segment.sam import masks_to_labels


def _assert_valid(labels: np.ndarray, shape: tuple[int, int]) -> None:
    assert labels.dtype == np.int32 and labels.shape == shape
    n = int(labels.max()) + 1
    assert np.array_equal(np.unique(labels), np.arange(n))
    four = ndimage.generate_binary_structure(2, 1)
    for lab in range(n):
        assert ndimage.label(labels == lab, structure=four)[1] == 1


def test_registered() -> None:
    assert "sam" in SEGMENTERS


def test_masks_to_labels_small_on_top_and_unclaimed() -> None:
    big = np.zeros((10, 10), bool)
    big[:, :6] = True
    small = np.zeros((10, 10), bool)
    small[2:4, 2:4] = True
    labels = masks_to_labels([small, big], (10, 10))
    _assert_valid(labels, (10, 10))
    # the small mask keeps its pixels although the big one covers them
    assert len(np.unique(labels[2:4, 2:4])) == 1
    assert labels[2, 2] != labels[0, 0]
    # the unclaimed right part is its own region
    assert len(np.unique(labels[:, 6:])) == 1
    assert labels[0, 9] not in (labels[0, 0], labels[2, 2])
    assert labels.max() + 1 == 3


def test_masks_to_labels_splits_disconnected_and_merges_tiny() -> None:
    m = np.zeros((8, 8), bool)
    m[:, :2] = True
    m[:, 6:] = True  # one mask in two pieces
    m[4, 4] = True  # and a one-pixel speck
    labels = masks_to_labels([m], (8, 8), min_size=2)
    _assert_valid(labels, (8, 8))
    assert labels.max() + 1 == 3  # left, right, middle (speck merged)
    assert masks_to_labels([], (3, 5)).max() == 0


def test_masks_to_labels_bad_shape() -> None:
    with pytest.raises(InvalidParameterError, match="masks\\[0\\]"):
        masks_to_labels([np.zeros((3, 3), bool)], (4, 4))


def test_sam_needs_checkpoint(tmp_path) -> None:
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        segment(img, "sam")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        segment(img, "sam", checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(InvalidParameterError, match="model_type"):
        segment(img, "sam", checkpoint=str(tmp_path / "missing.pth"), model_type="vit_q")


def test_sam_missing_dependency(monkeypatch) -> None:
    import sys

    from veil.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(MissingDependencyError, match="sam"):
        segment(np.zeros((8, 8, 3), np.uint8), "sam", checkpoint="x.pth")


def _tiny_sam():
    torch = pytest.importorskip("torch")
    sa = pytest.importorskip("segment_anything")
    from functools import partial

    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    del sa
    torch.manual_seed(0)
    dim, size, patch = 32, 64, 16
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=size, patch_size=patch, embed_dim=32, depth=1, num_heads=2,
            mlp_ratio=2.0, out_chans=dim, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
            window_size=0, global_attn_indexes=(0,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(size // patch, size // patch),
            input_image_size=(size, size), mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=32, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=16,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return model.eval()


def test_tiny_random_sam_end_to_end(tmp_path) -> None:
    import torch

    model = _tiny_sam()
    rng = np.random.default_rng(0)
    img = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    img[10:30, 10:30] = (250, 20, 20)
    img0 = img.copy()
    opts = dict(points_per_side=4, pred_iou_thresh=-10.0, stability_score_thresh=0.0,
                min_size=4)
    labels = segment(img, "sam", model=model, **opts)
    _assert_valid(labels, img.shape[:2])
    assert labels.max() + 1 > 1  # the random model does produce masks
    assert np.array_equal(img, img0)
    assert np.array_equal(labels, segment(img, "sam", model=model, **opts))

    # the checkpoint path: a saved state dict loads through sam_model_registry only for
    # the real architectures, so check the load error is a clear ModelLoadError
    from veil.errors import ModelLoadError

    ckpt = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), ckpt)
    with pytest.raises(ModelLoadError, match="model_type"):
        segment(img, "sam", checkpoint=str(ckpt), model_type="vit_b")
