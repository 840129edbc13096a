"""The transformers backend on tiny, randomly initialized InstructBLIP and LLaVA models.

The models are built from configs in the test and saved to a temporary folder,
so loading goes through the same ``local_files_only`` path as a real model;
nothing is downloaded.
"""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from tests.rationale import (  # noqa: E402
    build_tiny_instructblip,
    build_tiny_llava,
    build_tiny_qwen2_vl,
    make_result,
    model_output,
    region,
)
from veil.classify.base import Detection  # noqa: E402
from veil.errors import InvalidParameterError, ModelLoadError  # noqa: E402
from veil.rationale import answer_questions, build_control, explain, load_backend  # noqa: E402
from veil.rationale.hf import GENERATION_DEFAULTS  # noqa: E402

STATEMENT = "the image contains sexually explicit content"
QUESTION = "What are the people doing?"


@pytest.fixture(scope="module")
def instructblip_dir(tmp_path_factory):
    return build_tiny_instructblip(tmp_path_factory.mktemp("instructblip"))


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("qwen2_vl"))


def _result():
    det = Detection("FEMALE_BREAST_EXPOSED", 0.95, (3, 4, 20, 12))
    m = model_output("nudenet", {"FEMALE_BREAST_EXPOSED": 0.95}, ["FEMALE_BREAST_EXPOSED"],
                     detections=[det])
    return make_result([m], regions=[region(1, 0, (3, 4, 20, 12), (60, 90))])


class _Capture:
    """Record the token ids the Q-Former and the LLM's embedding layer receive."""

    def __init__(self, model):
        self.qformer: list = []
        self.embedded: list = []
        self.handles = [
            model.get_input_embeddings().register_forward_hook(
                lambda mod, args, out: self.embedded.append(args[0].detach().clone())
            )
        ]
        if hasattr(model, "qformer"):
            self.handles.append(model.qformer.register_forward_pre_hook(
                lambda mod, args, kwargs: self.qformer.append(
                    (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]).clone()
                ),
                with_kwargs=True,
            ))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_backend("transformers", path=tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="config.json"):
        load_backend("transformers", path=tmp_path)


def test_defaults_follow_the_paper():
    assert GENERATION_DEFAULTS["num_beams"] == 5
    assert GENERATION_DEFAULTS["max_length"] == 512
    assert GENERATION_DEFAULTS["top_p"] == 0.9
    assert GENERATION_DEFAULTS["repetition_penalty"] == 1.5
    assert GENERATION_DEFAULTS["length_penalty"] == 1.0
    assert GENERATION_DEFAULTS["temperature"] == 1


def test_instructblip_control_reaches_qformer_and_llm(instructblip_dir):
    backend = load_backend("transformers", path=instructblip_dir, device="cpu", max_new_tokens=6)
    assert backend.family == "instructblip"
    assert backend.generation["num_beams"] == 5
    r = _result()
    control = build_control(r)
    enc, texts = backend.build_inputs(r.image, control, QUESTION)
    qtok, ltok = backend.processor.qformer_tokenizer, backend.processor.tokenizer
    q_text = qtok.decode(enc["qformer_input_ids"][0], skip_special_tokens=True)
    assert STATEMENT in q_text and QUESTION in q_text and "exposed female breast" in q_text
    l_text = ltok.decode(enc["input_ids"][0], skip_special_tokens=True)
    assert STATEMENT in l_text
    assert "a small region in the upper left" in l_text and l_text.endswith("Answer:")
    assert texts["qformer"] != texts["prompt"]

    with _Capture(backend.model) as cap:
        out = explain(r, backend=backend, questions=[QUESTION])
    assert isinstance(out["text"], str) and len(out["answers"]) == 1
    assert cap.qformer, "the Q-Former never ran"
    assert STATEMENT in qtok.decode(cap.qformer[0][0], skip_special_tokens=True)
    assert STATEMENT in ltok.decode(cap.embedded[0][0], skip_special_tokens=True)


def test_paper_generation_settings_reach_generate(instructblip_dir, monkeypatch):
    backend = load_backend("transformers", path=instructblip_dir, device="cpu")
    seen = {}

    def fake_generate(**kw):
        seen.update(kw)
        return kw["input_ids"]

    monkeypatch.setattr(backend.model, "generate", fake_generate)
    r = _result()
    backend.explain(r.image, build_control(r))
    assert seen["num_beams"] == 5 and seen["max_new_tokens"] == 512
    assert seen["repetition_penalty"] == 1.5 and seen["length_penalty"] == 1.0
    assert "qformer_input_ids" in seen and "pixel_values" in seen
    sampling = load_backend("transformers", path=instructblip_dir, device="cpu", do_sample=True)
    monkeypatch.setattr(sampling.model, "generate", fake_generate)
    sampling.explain(r.image, build_control(r))
    assert seen["top_p"] == 0.9 and seen["temperature"] == 1.0


def test_instructblip_strength_zero_is_plain(instructblip_dir):
    backend = load_backend("transformers", path=instructblip_dir, device="cpu",
                           max_new_tokens=3, num_beams=1)
    r = _result()
    enc, texts = backend.build_inputs(r.image, build_control(r, strength=0), QUESTION)
    assert texts["qformer"] == QUESTION
    assert texts["prompt"] == f"Question: {QUESTION}\nAnswer:"
    ans = answer_questions(r.image, r, [QUESTION], backend=backend, strength=0)
    assert ans[0]["question"] == QUESTION


def test_llava_control_reaches_llm(llava_dir):
    backend = load_backend("transformers", path=llava_dir, device="cpu", max_new_tokens=5,
                           num_beams=2)
    assert backend.family == "llava"
    r = _result()
    control = build_control(r)
    enc, texts = backend.build_inputs(r.image, control, QUESTION)
    assert texts["prompt"].startswith("USER: <image>\nSafety classifiers report: " + STATEMENT)
    assert texts["prompt"].endswith(f"Question: {QUESTION} ASSISTANT:")
    tok = backend.processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    assert int((enc["input_ids"][0] == image_id).sum()) == 16  # 4×4 patches
    with _Capture(backend.model) as cap:
        text = backend.explain(r.image, control)
    assert isinstance(text, str)
    assert STATEMENT in tok.decode(cap.embedded[0][0], skip_special_tokens=True)


def test_qwen2_vl_control_reaches_llm(qwen_dir):
    backend = load_backend("transformers", path=qwen_dir, device="cpu", max_new_tokens=4,
                           num_beams=2)
    assert backend.family == "qwen2_vl"
    r = _result()
    control = build_control(r)
    enc, texts = backend.build_inputs(r.image, control, QUESTION)
    assert texts["prompt"].startswith(
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Safety classifiers report: "
        + STATEMENT
    )
    assert "image_grid_thw" in enc
    with _Capture(backend.model) as cap:
        text = backend.explain(r.image, control)
    assert isinstance(text, str)
    tok = backend.processor.tokenizer
    assert STATEMENT in tok.decode(cap.embedded[0][0], skip_special_tokens=True)


def test_image_required(instructblip_dir):
    backend = load_backend("transformers", path=instructblip_dir, device="cpu", max_new_tokens=2)
    with pytest.raises(InvalidParameterError, match="needs the image"):
        backend.explain(None, build_control(_result()))
    with pytest.raises(InvalidParameterError, match="generation options"):
        load_backend("transformers", path=instructblip_dir, beams=3)
