"""Model cards: loading torchvision / timm checkpoints and the errors for malformed cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from veil.classify import load_classifier
from veil.classify.arch import build_model
from veil.classify.card import load_model_card, read_model_card, write_model_card
from veil.classify.torch import TorchClassifier
from veil.errors import InvalidParameterError, ModelLoadError, UnknownNameError

MEAN = [0.5, 0.4, 0.3]
STD = [0.2, 0.25, 0.3]


def _card(**overrides: Any) -> dict[str, Any]:
    card: dict[str, Any] = {
        "arch": "mobilenet_v3_small",
        "weights": "model.pt",
        "labels": ["safe", "racy", "unsafe"],
        "unsafe_labels": ["racy", "unsafe"],
        "input_size": 32,
        "mean": MEAN,
        "std": STD,
    }
    card.update(overrides)
    return {k: v for k, v in card.items() if v is not _DROP}


_DROP = object()


def _model(arch: str, n: int, source: str | None = None, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, n, source=source).eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder with torchvision mobilenet_v3_small weights (3 classes) saved as model.pt."""
    d = tmp_path_factory.mktemp("card")
    torch.save(_model("mobilenet_v3_small", 3).state_dict(), d / "model.pt")
    return d


def _write(folder: Path, card: Any, name: str = "card.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(card))
    return path


def _images(n: int = 3, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _reference_proba(model: torch.nn.Module, images: list[np.ndarray]) -> np.ndarray:
    """Softmax of the module on images already at input size, normalized by hand."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


def test_load_torchvision_card_matches_module(folder: Path) -> None:
    path = _write(folder, _card(description="tiny test model", extra_key=[1, 2]))
    clf = load_model_card(path)
    assert isinstance(clf, TorchClassifier)
    assert clf.labels == ("safe", "racy", "unsafe") and clf.unsafe_labels == ("racy", "unsafe")
    assert clf.name == "card" and clf.threshold == 0.5 and clf.input_size == 32
    assert clf.config["arch"] == "mobilenet_v3_small" and clf.config["extra_key"] == [1, 2]
    assert clf.config["description"] == "tiny test model"
    images = _images()
    proba = clf.predict_proba(images)
    np.testing.assert_allclose(proba, _reference_proba(_model("mobilenet_v3_small", 3), images), atol=1e-5)
    np.testing.assert_allclose(clf.unsafe_score(proba), proba[:, 1] + proba[:, 2], atol=1e-6)


def test_timm_card_with_wrapped_checkpoint(tmp_path: Path) -> None:
    model = _model("mobilenetv3_small_050", 2, source="timm", seed=1)
    # A DataParallel-style checkpoint: {"state_dict": {"module.<key>": tensor}}.
    wrapped = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "ckpt.pth")
    card = _card(arch="mobilenetv3_small_050", weights="ckpt.pth", labels=["ok", "nsfw"],
                 unsafe_labels=["nsfw"], source="timm", name="tiny", threshold=0.7,
                 categories={"nsfw": "nudity"})
    clf = load_model_card(_write(tmp_path, card), threshold=0.6)
    assert clf.name == "tiny" and clf.threshold == 0.6 and clf.config["threshold"] == 0.6
    assert clf.config["categories"] == {"nsfw": "nudity"} and clf.config["source"] == "timm"
    images = _images(2)
    np.testing.assert_allclose(clf.predict_proba(images), _reference_proba(model, images), atol=1e-5)


def test_model_wrapper_key_and_subfolder_weights(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    model = _model("mobilenetv3_small_050", 2, source="timm", seed=2)
    torch.save({"model": model.state_dict()}, tmp_path / "weights" / "w.pt")
    card = _card(arch="mobilenetv3_small_050", weights="weights/w.pt", labels=["a", "b"], unsafe_labels=["b"])
    clf = load_model_card(_write(tmp_path, card))
    images = _images(1)
    np.testing.assert_allclose(clf.predict_proba(images), _reference_proba(model, images), atol=1e-5)


def test_load_classifier_dispatches_json(folder: Path) -> None:
    path = _write(folder, _card(), name="via_registry.json")
    clf = load_classifier(str(path), threshold=0.4)
    assert isinstance(clf, TorchClassifier) and clf.name == "via_registry" and clf.threshold == 0.4
    assert load_classifier(path).name == "via_registry"


def test_load_classifier_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="nudenet"):
        load_classifier("nope")


def test_gradient_path_of_loaded_card(folder: Path) -> None:
    clf = load_model_card(_write(folder, _card()))
    x = clf.torch_input(_images(1)[0]).requires_grad_(True)
    clf.torch_unsafe_score(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert clf.cam_target_layers()


def test_write_then_read_round_trip(folder: Path) -> None:
    card = _card(name="rt", categories={"unsafe": "nudity", "racy": "suggestive"})
    path = write_model_card(folder / "out" / "rt.json", card)
    assert path.is_file() and json.loads(path.read_text()) == card
    # weights are relative to the card, so the copy in out/ needs its own file
    torch.save(_model("mobilenet_v3_small", 3).state_dict(), folder / "out" / "model.pt")
    read = read_model_card(path)
    assert read["name"] == "rt" and read["threshold"] == 0.5 and read["source"] is None
    assert {k: read[k] for k in card} == card


def test_write_rejects_bad_card(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="unsafe_labels"):
        write_model_card(tmp_path / "bad.json", _card(unsafe_labels=["nope"]))
    with pytest.raises(ModelLoadError, match="JSON-serialisable"):
        write_model_card(tmp_path / "bad.json", _card(extra=object()))
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize(
    ("overrides", "key", "hint"),
    [
        ({"arch": _DROP}, "arch", "missing required key"),
        ({"labels": _DROP, "std": _DROP}, "labels", "std"),
        ({"arch": 5}, "arch", "non-empty string"),
        ({"weights": ""}, "weights", "non-empty string"),
        ({"labels": "safe,unsafe"}, "labels", "list"),
        ({"labels": ["safe", "safe", "unsafe"]}, "labels", "duplicate"),
        ({"unsafe_labels": ["porn"]}, "unsafe_labels", "not in labels"),
        ({"unsafe_labels": []}, "unsafe_labels", "non-empty"),
        ({"input_size": "32"}, "input_size", "integer"),
        ({"input_size": 4}, "input_size", "at least 8"),
        ({"input_size": True}, "input_size", "integer"),
        ({"mean": [0.5, 0.5]}, "mean", "3 numbers"),
        ({"std": [0.2, 0.0, 0.3]}, "std", "positive"),
        ({"threshold": 1.5}, "threshold", "(0, 1)"),
        ({"threshold": "high"}, "threshold", "(0, 1)"),
        ({"source": "keras"}, "source", "torchvision"),
        ({"categories": {"other": "x"}}, "categories", "not in labels"),
        ({"categories": ["x"]}, "categories", "map label"),
        ({"name": ""}, "name", "non-empty"),
        ({"description": 3}, "description", "string"),
        ({"weights": "missing.pt"}, "weights", "does not exist"),
        ({"arch": "resnet_51"}, "arch", "did you mean"),
        ({"arch": "mobilenetv3_small_050", "source": "torchvision"}, "arch", "torchvision"),
        ({"arch": "resnet18"}, "weights", "missing keys"),
        ({"labels": ["a", "b"], "unsafe_labels": ["b"]}, "weights", "shape mismatches"),
    ],
)
def test_malformed_cards_raise_model_load_error(folder: Path, overrides, key, hint) -> None:
    path = _write(folder, _card(**overrides), name="bad.json")
    with pytest.raises(ModelLoadError) as info:
        load_model_card(path)
    msg = str(info.value)
    assert str(path) in msg and f"key {key!r}" in msg and hint in msg and "fix:" in msg, msg


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (b"\xff\xfe\x00", "UTF-8"),
    ],
)
def test_unreadable_card_files(tmp_path: Path, content, hint) -> None:
    path = tmp_path / "card.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ModelLoadError, match=hint) as info:
        read_model_card(path)
    assert str(path) in str(info.value)


def test_missing_card_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model_card(tmp_path / "none.json")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_classifier(tmp_path / "none.json")


@pytest.mark.parametrize(
    ("payload", "hint"),
    [
        ([1, 2, 3], "does not hold a state_dict"),
        ({"state_dict": {}}, "does not hold a state_dict"),
    ],
)
def test_weights_that_are_not_state_dicts(tmp_path: Path, payload, hint) -> None:
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(ModelLoadError, match=hint):
        load_model_card(_write(tmp_path, _card()))


def test_corrupt_weights_file(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="weights-only torch file"):
        load_model_card(_write(tmp_path, _card()))


def test_bad_threshold_and_device_arguments(folder: Path) -> None:
    path = _write(folder, _card())
    with pytest.raises(InvalidParameterError, match="threshold"):
        load_model_card(path, threshold=0)
    with pytest.raises(InvalidParameterError, match="device"):
        load_model_card(path, device="warp-drive")


def test_card_file_is_not_modified(folder: Path) -> None:
    path = _write(folder, _card(), name="keep.json")
    before = path.read_bytes()
    load_model_card(path, threshold=0.3)
    assert path.read_bytes() == before


def test_device_wrapper_matches_plain_classifier(folder: Path) -> None:
    # No GPU here: drive the non-CPU code path with the CPU device to check it end to end.
    from veil.classify.card import _DeviceTorchClassifier

    plain = load_model_card(_write(folder, _card()), device="cpu")
    assert type(plain) is TorchClassifier
    moved = _DeviceTorchClassifier(
        _model("mobilenet_v3_small", 3), plain.labels, plain.unsafe_labels,
        input_size=32, mean=MEAN, std=STD, device=torch.device("cpu"),
    )
    images = _images(3)
    np.testing.assert_allclose(moved.predict_proba(images), plain.predict_proba(images), atol=1e-6)
    assert moved.predict_proba([]).shape == (0, 3)


def _resnet18_card(folder: Path, model: torch.nn.Module, **overrides: Any) -> Path:
    """A two-label resnet18 card for ``model``'s weights."""
    torch.save(model.state_dict(), folder / "r.pt")
    return _write(folder, _card(arch="resnet18", weights="r.pt", labels=["safe", "unsafe"],
                                unsafe_labels=["unsafe"], **overrides))


def test_card_loads_channels_last_with_the_same_outputs(tmp_path: Path) -> None:
    """Convolution weights load channels-last (the CPU's faster kernels); outputs match the NCHW module."""
    model = _model("resnet18", 2, seed=3)
    clf = load_model_card(_resnet18_card(tmp_path, model))
    convs = [m for m in clf.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert all(p.is_contiguous() for p in model.parameters())  # the reference stays NCHW
    images = _images(4)
    np.testing.assert_allclose(clf.predict_proba(images), _reference_proba(model, images), atol=1e-5)
    x = clf.torch_input(images[0]).requires_grad_(True)
    clf.torch_unsafe_score(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_every_attribution_method_reads_a_channels_last_card(tmp_path: Path) -> None:
    """Each attribution method gives a loaded (channels-last) card the map it gives the same module in NCHW."""
    from veil.attribution import ATTRIBUTIONS

    # (at 96 px ResNet-18's last block has 3 × 3 cells, so that a CAM is not flat)
    path = _resnet18_card(tmp_path, _model("resnet18", 2, seed=4), input_size=96)
    last, plain = load_model_card(path), load_model_card(path)
    plain.module.to(memory_format=torch.contiguous_format)
    image = _images(1, 96)[0]
    names = list(ATTRIBUTIONS)
    assert {"fullgrad", "gradcam", "occlusion"} <= set(names)
    for name in names:
        a = np.asarray(ATTRIBUTIONS.get(name)(image, last))
        b = np.asarray(ATTRIBUTIONS.get(name)(image, plain))
        assert a.shape == image.shape[:2] and np.isfinite(a).all() and float(np.ptp(a)) > 0, name
        np.testing.assert_allclose(a, b, atol=1e-4, err_msg=name)


# -- scoring through onnxruntime -------------------------------------------------------------------
def test_card_scores_through_onnxruntime_and_caches_the_graph(tmp_path: Path, monkeypatch) -> None:
    """On the CPU a card scores with onnxruntime by default: the same probabilities as the module, the graph
    exported once and read back from the cache on the next load; ``scoring="torch"`` keeps the module."""
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path / "cache"))
    model = _model("resnet18", 2, seed=5)
    path = _resnet18_card(tmp_path, model)
    clf = load_model_card(path)
    assert clf.scoring == "onnxruntime"
    graphs = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(graphs) == 1 and graphs[0].stat().st_size > 1000
    images = _images(5)
    want = _reference_proba(model, images)
    np.testing.assert_allclose(clf.predict_proba(images), want, atol=1e-5)
    plain = load_model_card(path, scoring="torch")
    assert plain.scoring == "torch"
    np.testing.assert_allclose(plain.predict_proba(images), want, atol=1e-5)

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again instead of reading the cache")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = load_model_card(path)
    assert again.scoring == "onnxruntime"
    np.testing.assert_allclose(again.predict_proba(images), want, atol=1e-5)
    # other weights are another graph: not read from the first one's cache entry
    (tmp_path / "other").mkdir()
    other = _resnet18_card(tmp_path / "other", _model("resnet18", 2, seed=6))
    with pytest.warns(RuntimeWarning, match="scoring with torch"):
        assert load_model_card(other).scoring == "torch"


def test_scoring_falls_back_to_torch_with_a_warning_or_raises_when_asked(folder: Path, monkeypatch) -> None:
    path = _write(folder, _card(), "fallback.json")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setenv("VEIL_CACHE_DIR", str(folder / "empty-cache"))
    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.warns(RuntimeWarning, match="unsupported operator"):
        clf = load_model_card(path)
    assert clf.scoring == "torch"
    images = _images()
    np.testing.assert_allclose(clf.predict_proba(images), _reference_proba(_model("mobilenet_v3_small", 3), images),
                               atol=1e-5)
    with pytest.raises(ModelLoadError, match=r"fallback\.json.*unsupported operator.*scoring='torch'"):
        load_model_card(path, scoring="onnxruntime")
    with pytest.raises(InvalidParameterError, match="scoring must be one of"):
        load_model_card(path, scoring="tensorrt")


def test_the_environment_picks_the_scoring_backend(tmp_path: Path, monkeypatch) -> None:
    """``VEIL_SCORING`` switches every loader that does not name a backend (``veil scan``, the service, the
    batch workers); an argument still wins, and a misspelt value is refused with the variable's name."""
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path / "cache"))
    path = _resnet18_card(tmp_path, _model("resnet18", 2, seed=5))
    monkeypatch.setenv("VEIL_SCORING", "torch")
    assert load_model_card(path).scoring == "torch"
    assert load_classifier(str(path)).scoring == "torch"
    assert not list((tmp_path / "cache").glob("onnx/*.onnx"))  # nothing exported
    assert load_model_card(path, scoring="auto").scoring == "onnxruntime"
    monkeypatch.setenv("VEIL_SCORING", " ONNXRuntime ")
    assert load_model_card(path).scoring == "onnxruntime"
    monkeypatch.setenv("VEIL_SCORING", "")
    assert load_model_card(path).scoring == "onnxruntime"
    monkeypatch.setenv("VEIL_SCORING", "tensorrt")
    with pytest.raises(InvalidParameterError, match="VEIL_SCORING must be one of"):
        load_model_card(path)


def test_a_graph_that_disagrees_with_the_module_is_not_used(tmp_path: Path, monkeypatch) -> None:
    """The exported graph is checked against the module on a probe batch before it scores."""
    import veil.classify.torch as vt

    clf = load_model_card(_resnet18_card(tmp_path, _model("resnet18", 2, seed=7)), scoring="torch")
    wrong, _ = vt._exported(_model("resnet18", 2, seed=8), 32, cache=False)  # same shapes, other weights
    monkeypatch.setattr(vt, "_exported", lambda *a, **k: (wrong, False))
    with pytest.raises(ModelLoadError, match="away from the module's"):
        clf.score_with_onnxruntime()
    assert clf.scoring == "torch"


def test_onnxruntime_scoring_without_a_writable_cache_and_after_pickling(tmp_path: Path, monkeypatch) -> None:
    import pickle

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("VEIL_CACHE_DIR", str(blocker))  # (the cache folder cannot be made under a file)
    model = _model("resnet18", 2, seed=9)
    clf = load_model_card(_resnet18_card(tmp_path, model))
    assert clf.scoring == "onnxruntime"
    images = _images(2)
    np.testing.assert_allclose(clf.predict_proba(images), _reference_proba(model, images), atol=1e-5)
    copy = pickle.loads(pickle.dumps(clf))  # (a session does not pickle: the copy scores with its module)
    assert copy.scoring == "torch"
    np.testing.assert_allclose(copy.predict_proba(images), _reference_proba(model, images), atol=1e-5)


def test_a_broken_cached_graph_is_exported_again_and_replaced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path / "cache"))
    model = _model("resnet18", 2, seed=10)
    path = _resnet18_card(tmp_path, model)
    assert load_model_card(path).scoring == "onnxruntime"
    (graph,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    graph.write_bytes(b"not an onnx graph")  # (a truncated or corrupted cache entry)
    clf = load_model_card(path)
    assert clf.scoring == "onnxruntime" and graph.stat().st_size > 1000  # exported again, entry replaced
    images = _images(2)
    np.testing.assert_allclose(clf.predict_proba(images), _reference_proba(model, images), atol=1e-5)


def test_a_bfloat16_module_loads_whichever_backend_it_gets() -> None:
    """Weights numpy cannot hold (bfloat16) are hashed as bytes: the module scores, through onnxruntime or
    (if the export or its check fails) through torch, and never fails to load."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    net = net.to(torch.bfloat16)

    class Cast(torch.nn.Module):  # (the classifier feeds float32)
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.to(torch.bfloat16)).float()

    clf = TorchClassifier(Cast(), ["safe", "unsafe"], ["unsafe"], input_size=8)
    try:
        clf.score_with_onnxruntime(cache=False)
    except ModelLoadError:
        assert clf.scoring == "torch"
    else:
        assert clf.scoring == "onnxruntime"
    proba = clf.predict_proba(_images(2, 8))
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-3)
