"""CLIP-based heads wired to tiny random CLIP models saved to tmp (nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from veil.classify import load_classifier  # noqa: E402
from veil.classify.clip import ClipClassifier, is_clip_card, load_clip_card, mlp_from_state_dict  # noqa: E402
from veil.errors import ModelLoadError  # noqa: E402

DIM = 12  # projection_dim of the tiny backbones


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection
    from transformers.utils import logging

    logging.set_verbosity_error()
    root = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    vision = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                  image_size=32, patch_size=8)
    full = CLIPConfig(text_config=dict(hidden_size=16, intermediate_size=32, num_attention_heads=2,
                                       num_hidden_layers=1, vocab_size=64, max_position_embeddings=16,
                                       bos_token_id=0, eos_token_id=1, pad_token_id=1),
                      vision_config=vision, projection_dim=DIM)
    CLIPModel(full).save_pretrained(root / "full")
    CLIPVisionModelWithProjection(CLIPVisionConfig(**vision, projection_dim=DIM)).save_pretrained(root / "vision")
    return {"full": root / "full", "vision": root / "vision"}


def _card(tmp_path: Path, backbone: Path, head: object, **card) -> Path:
    torch.save(head, tmp_path / "head.pt")
    path = tmp_path / f"{card.get('name', 'clf')}.json"
    path.write_text(json.dumps({"backbone": str(backbone), "head": "head.pt", **card}))
    return path


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


def _embed(clf: ClipClassifier, images) -> torch.Tensor:
    with torch.no_grad():
        return clf.embed(clf.preprocess(images))


def test_q16_is_softmax_of_scaled_cosines(tmp_path, backbones):
    prompts = torch.randn(2, DIM)
    path = _card(tmp_path, backbones["full"], {"prompts": prompts}, type="clip-q16", name="q16",
                 categories=["sexual", "violence"])
    assert is_clip_card(path)
    clf = load_classifier(path)
    assert isinstance(clf, ClipClassifier) and clf.labels == ("safe", "unsafe") and clf.name == "q16"
    images = _images()
    e = torch.nn.functional.normalize(_embed(clf, images), dim=-1)
    want = torch.softmax(100 * e @ torch.nn.functional.normalize(prompts, dim=-1).T, dim=-1).numpy()
    proba = clf.predict_proba(images)
    np.testing.assert_allclose(proba, want, atol=1e-5)
    np.testing.assert_allclose(clf.unsafe_score(proba), want[:, 1], atol=1e-5)
    # log-odds path agrees with the probabilities
    x = torch.cat([clf.torch_input(im) for im in images])
    lo = clf.torch_unsafe_score(x).detach()
    np.testing.assert_allclose(torch.sigmoid(lo).numpy(), want[:, 1], atol=1e-4)


def test_multiheaded_five_heads(tmp_path, backbones):
    torch.manual_seed(1)
    names = ["sexual", "violent", "disturbing", "hateful", "political"]
    nets = {n: torch.nn.Sequential(torch.nn.Linear(DIM, 6), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                   torch.nn.Linear(6, 1)).eval() for n in names}
    head = {n: net.state_dict() for n, net in nets.items()}
    path = _card(tmp_path, backbones["vision"], head, type="clip-multiheaded", name="mh",
                 categories={"sexual": "sexual", "violent": "violence", "disturbing": "shocking",
                             "hateful": "hate", "political": "political"})
    clf = load_clip_card(path)
    assert clf.labels == tuple(names) and clf.unsafe_labels == tuple(names)
    images = _images()
    e = _embed(clf, images)
    want = torch.cat([torch.sigmoid(nets[n](e)) for n in names], 1).detach().numpy()
    proba = clf.predict_proba(images)
    np.testing.assert_allclose(proba, want, atol=1e-5)
    np.testing.assert_allclose(clf.unsafe_score(proba), want.max(1), atol=1e-5)
    from veil.bench.metrics import classifier_coverage

    assert classifier_coverage(clf) == {"sexual", "violence", "shocking", "hate", "political"}


def test_laion_mlp_on_normalized_embedding(tmp_path, backbones):
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(DIM, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 1)).eval()
    clf = load_clip_card(_card(tmp_path, backbones["full"], net.state_dict(), type="clip-laion-nsfw"))
    images = _images()
    e = torch.nn.functional.normalize(_embed(clf, images), dim=-1)
    p = torch.sigmoid(net(e))[:, 0].detach().numpy()
    np.testing.assert_allclose(clf.unsafe_score(clf.predict_proba(images)), p, atol=1e-5)
    assert clf.labels == ("safe", "nsfw")


def test_sd_safety_checker_decision(tmp_path, backbones):
    torch.manual_seed(3)
    concepts, special = torch.randn(17, DIM), torch.randn(3, DIM)
    head = {"concept_embeds": concepts, "concept_embeds_weights": torch.full((17,), 0.05),
            "special_care_embeds": special, "special_care_embeds_weights": torch.full((3,), 0.9)}
    clf = load_clip_card(_card(tmp_path, backbones["vision"], head, type="clip-sd-safety"))
    images = _images(6)
    e = torch.nn.functional.normalize(_embed(clf, images), dim=-1)
    cos = e @ torch.nn.functional.normalize(concepts, dim=-1).T
    special_fire = ((e @ torch.nn.functional.normalize(special, dim=-1).T - 0.9) > 0).any(1).float() * 0.01
    nsfw = ((cos - 0.05 + special_fire[:, None]) > 0).any(1).numpy()
    score = clf.unsafe_score(clf.predict_proba(images))
    np.testing.assert_array_equal(score > 0.5, nsfw)


def test_attacks_run_on_a_clip_classifier(tmp_path, backbones):
    from veil.bench.attacks import evaluate_robustness

    clf = load_clip_card(_card(tmp_path, backbones["full"], torch.randn(2, DIM), type="clip-q16"))
    images = _images(2)
    labels = (clf.unsafe_score(clf.predict_proba(images)) > 0.5).astype(int)
    rows = evaluate_robustness(clf, images, labels, attacks=["fgsm", "noise"], eps=[0.5])
    assert all(r["robust_accuracy"] is not None and r["clean_accuracy"] == 1.0 for r in rows)


def test_card_errors(tmp_path, backbones):
    with pytest.raises(ModelLoadError, match="unknown CLIP head type"):
        load_clip_card(_card(tmp_path, backbones["full"], torch.randn(2, DIM), type="clip-nope"))
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_clip_card(_card(tmp_path, tmp_path, torch.randn(2, DIM), type="clip-q16"))
    with pytest.raises(ModelLoadError, match="does not fit the backbone"):
        load_clip_card(_card(tmp_path, backbones["full"], torch.randn(2, DIM + 1), type="clip-q16"))
    with pytest.raises(ModelLoadError, match="lacks"):
        load_clip_card(_card(tmp_path, backbones["full"], {"concept_embeds": torch.randn(2, DIM)},
                             type="clip-sd-safety"))
    with pytest.raises(ModelLoadError, match="labels"):
        load_clip_card(_card(tmp_path, backbones["full"], torch.randn(3, DIM), type="clip-q16",
                             labels=["safe", "unsafe"]))
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"type": "clip-q16", "backbone": str(backbones["full"]), "head": "missing.pt"}))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_clip_card(bad)


def test_mlp_from_state_dict_checks_shapes():
    from veil.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="expects 5 inputs"):
        mlp_from_state_dict({"0.weight": torch.zeros(4, 3), "2.weight": torch.zeros(1, 5)})
