"""The grounded backend's sentences against planted results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.rationale import make_result, model_output, region
from veil.classify.base import Detection
from veil.errors import InvalidParameterError, UnknownNameError
from veil.rationale import RATIONALE_BACKENDS, answer_questions, explain, load_backend
from veil.rationale.grounded import compose_rationale
from veil.taxonomy import CATEGORIES, GENERAL_QUESTIONS, TAXONOMIES

SHAPE = (60, 90)
ALL_TITLES = [CATEGORIES.get(k).title for k in set(TAXONOMIES["paper"] + TAXONOMIES["unsafebench"])]


def _nudenet():
    det = Detection("FEMALE_BREAST_EXPOSED", 0.93, (63, 42, 18, 12))  # lower right
    m = model_output("nudenet", {"FEMALE_BREAST_EXPOSED": 0.93, "FACE_FEMALE": 0.8},
                     ["FEMALE_BREAST_EXPOSED"], detections=[det])
    reg = region(3, 0, (63, 42, 18, 12), SHAPE)  # 216 / 5400 = 4 %
    return make_result([m], shape=SHAPE, regions=[reg])


def test_registry_and_factory():
    assert RATIONALE_BACKENDS.names() == ["grounded", "openai", "transformers"]
    assert load_backend("grounded").name == "grounded"
    with pytest.raises(UnknownNameError, match="grounded"):
        load_backend("nope")
    b = load_backend("grounded")
    assert load_backend(b) is b
    with pytest.raises(InvalidParameterError, match="existing backend"):
        load_backend(b, foo=1)


def test_sexual_rationale_names_category_place_and_area():
    out = explain(_nudenet())
    json.dumps(out)
    text = out["text"]
    assert out["backend"] == "grounded"
    assert "flagged as unsafe because it contains sexually explicit content (probability 0.93)" in text
    assert CATEGORIES.get("sexual").definition in text
    assert "exposed female breast in the lower right" in text
    assert "a small region in the lower right (about 4% of the image)" in text
    assert "female face" not in text
    assert text.count("exposed female breast") == 1
    for title in ALL_TITLES:
        if title != "sexually explicit content":
            assert title not in text


def test_low_category_never_named():
    m = model_output("ub", {"safe": 0.05, "violence": 0.62, "self-harm": 0.33},
                     ["violence", "self-harm"])
    reg = region(1, 0, (0, 0, 30, 20), SHAPE)
    text = explain(make_result([m], shape=SHAPE, regions=[reg]))["text"]
    assert "could contain violence (probability 0.62)" in text
    assert "self-harm" not in text
    assert "upper left" in text


def test_unobfuscated_region_not_mentioned():
    m = model_output("bin", {"safe": 0.02, "porn": 0.98}, ["porn"])
    inside = region(1, 0, (30, 20, 30, 20), SHAPE)  # centre
    outside = region(2, 1, (0, 45, 10, 10), SHAPE)  # lower left
    r = make_result([m], shape=SHAPE, regions=[inside, outside], masked=[inside])
    text = explain(r)["text"]
    assert "in the centre" in text and "lower left" not in text
    assert "Veil obfuscated a medium region in the centre (about 11% of the image)." in text


def test_several_regions_are_counted_with_places():
    m = model_output("bin", {"safe": 0.02, "porn": 0.98}, ["porn"])
    regs = [region(1, 0, (0, 0, 9, 6), SHAPE), region(2, 1, (10, 0, 9, 6), SHAPE),
            region(3, 2, (15, 40, 60, 20), SHAPE)]
    text = explain(make_result([m], shape=SHAPE, regions=regs))["text"]
    assert "Veil obfuscated 3 regions covering about 24% of the image" in text
    assert "2 small regions in the upper left (about 2% of the image together)" in text
    assert "a large region in the lower centre (about 22% of the image)" in text


def test_safe_image_says_nothing_about_categories():
    m = model_output("ub", {"safe": 0.6, "self-harm": 0.4}, ["self-harm"])
    r = make_result([m])
    qs = [*GENERAL_QUESTIONS, "Are there any depictions of self-harm in the image?"]
    out = explain(r, questions=qs)
    assert out["text"].startswith("The image was judged safe")
    everything = out["text"] + " ".join(a["answer"] for a in out["answers"])
    for title in ALL_TITLES + ["self_harm", "probability"]:
        assert title not in everything
    assert out["answers"][2]["answer"].startswith("No.")


def test_generic_unsafe_could_be_unsafe():
    m = model_output("bin", {"safe": 0.6, "flagged": 0.4}, ["flagged"], threshold=0.3)
    text = explain(make_result([m], fail_closed=True))["text"]
    assert "could be unsafe for viewing" in text
    assert "unsafe score of 0.40 against a threshold of 0.30" in text
    assert "withheld" in text
    for title in ALL_TITLES:
        assert title not in text


def test_answers_follow_the_control_code():
    qs = [
        "Does the image contain any sexual content or nudity?",
        "Is there any aggressive behavior shown in the image?",
        "What is happening in the image?",
    ]
    ans = answer_questions(None, _nudenet(), qs)
    assert [a["question"] for a in ans] == qs
    assert ans[0]["answer"].startswith("Yes, the image contains sexually explicit content")
    assert "exposed female breast in the lower right" in ans[0]["answer"]
    assert ans[1]["answer"].startswith("No.")
    assert "cyberbullying" not in ans[1]["answer"]
    assert "sexually explicit content" in ans[2]["answer"]


def test_compose_is_deterministic_and_validates():
    r = _nudenet()
    assert explain(r)["text"] == explain(r)["text"]
    with pytest.raises(InvalidParameterError):
        compose_rationale("nope")
    with pytest.raises(InvalidParameterError, match="questions"):
        answer_questions(None, r, [])
    with pytest.raises(InvalidParameterError, match=r"questions\[0\]"):
        explain(r, questions=[""])


def test_result_not_modified():
    r = _nudenet()
    explain(r, questions=["What are the people doing?"])
    assert r.rationale is None


# -- veil explain / veil train-vlm (the pipeline is monkeypatched) ------------------------------
def _cli(monkeypatch, tmp_path, result):
    from typer.testing import CliRunner

    from veil import pipeline
    from veil.cli import app
    from veil.image import save_image

    seen = {}

    def fake_safeguard(image, config=None, **kw):
        seen["image"], seen["config"] = image, config
        return result

    monkeypatch.setattr(pipeline, "safeguard", fake_safeguard)
    img = tmp_path / "x.png"
    save_image(result.image, img)
    return CliRunner(), app, img, seen


def test_cli_explain_prints_answers_and_rationale(monkeypatch, tmp_path):
    runner, app, img, seen = _cli(monkeypatch, tmp_path, _nudenet())
    res = runner.invoke(app, ["explain", str(img), "--model", "nudenet", "-q", "paper",
                              "-q", "Is anyone naked?", "--strength", "0.5"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["unsafe"] is True
    assert rec["rationale"]["backend"] == "grounded"
    assert rec["rationale"]["control"]["strength"] == 0.5
    assert "exposed female breast in the lower right" in rec["rationale"]["text"]
    qs = [a["question"] for a in rec["answers"]]
    assert qs[:3] == ["Does the image contain any sexual content or nudity?",
                      "Is there any aggressive behavior shown in the image?",
                      "Are there any depictions of self-harm in the image?"]
    assert qs[-1] == "Is anyone naked?" and len(qs) == 6
    assert seen["config"].models == ("nudenet",)
    assert seen["image"].shape == (60, 90, 3)


def test_cli_explain_card_categories(monkeypatch, tmp_path):
    m = model_output("mycard", {"ok": 0.05, "c1": 0.95}, ["c1"])
    runner, app, img, _ = _cli(monkeypatch, tmp_path, make_result([m]))
    card = tmp_path / "mycard.json"
    card.write_text(json.dumps({"categories": {"c1": "self-harm"}}))
    res = runner.invoke(app, ["explain", str(img), "--model", str(card)])
    assert res.exit_code == 0, res.output
    assert "contains self-harm" in json.loads(res.stdout)["rationale"]["text"]


def test_cli_errors_are_one_line_exit_2(monkeypatch, tmp_path):
    runner, app, img, _ = _cli(monkeypatch, tmp_path, _nudenet())
    res = runner.invoke(app, ["explain", str(img), "--strength", "2"])
    assert res.exit_code == 2 and "strength" in res.output
    res = runner.invoke(app, ["explain", str(img), "--backend", "transformers"])
    assert res.exit_code == 2 and "--vlm-path" in res.output
    res = runner.invoke(app, ["explain", str(img), "--backend", "transformers",
                              "--vlm-path", str(tmp_path / "none")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["explain", str(tmp_path / "missing.png")])
    assert res.exit_code == 2 and "no such image" in res.output
    res = runner.invoke(app, ["train-vlm", str(tmp_path / "d.jsonl"), "--model-dir",
                              str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "config.json" in res.output


def test_random_results_never_name_unreported_categories():
    """Seeded sweep: a title appears iff its category reached both 0.5 and the model's threshold."""
    from veil.rationale import build_control

    rng = np.random.default_rng(0)
    labels = ["violence", "self-harm", "hate", "porn", "spam"]
    for _ in range(60):
        raw = rng.dirichlet(np.ones(len(labels) + 1) * 0.5)
        proba = {"safe": float(raw[0]), **{lb: float(p) for lb, p in zip(labels, raw[1:], strict=True)}}
        thr = float(rng.choice([0.3, 0.5, 0.7]))
        m = model_output("m", proba, labels, threshold=thr)
        r = make_result([m])
        text = explain(r)["text"]
        control = build_control(r)
        for lb in labels:
            cat = CATEGORIES.get({"self-harm": "self_harm", "porn": "sexual"}.get(lb, lb))
            named = r.unsafe and proba[lb] >= max(0.5, thr)
            assert (cat.title in text) == named, (lb, proba, thr, text)
        if not r.unsafe:
            assert control["statement"] is None and control["categories"] == []
