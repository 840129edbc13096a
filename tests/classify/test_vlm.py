"""The zero-shot VLM classifier: a tiny random LLaVA end to end, and canned answers over HTTP.

The LLaVA is built from a config and saved to a temporary folder (nothing is
downloaded); the OpenAI-compatible endpoint is a scripted server on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from veil.classify import Classifier, load_classifier
from veil.classify.vlm import VLMClassifier, is_vlm_card, verdict_probability, write_vlm_card
from veil.errors import CapabilityError, InvalidParameterError, ModelLoadError
from veil.taxonomy import get_category

IMG = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)


# -- an OpenAI-compatible endpoint with canned answers -----------------------------------------
def _steps(tokens, alts):
    """Chat-completions ``logprobs.content`` for ``tokens``; ``alts[i]`` = {token: p} at step i."""
    out = []
    for i, t in enumerate(tokens):
        top = alts.get(i, {t: 1.0})
        out.append({"token": t, "logprob": math.log(top.get(t, 1e-6)),
                    "top_logprobs": [{"token": k, "logprob": math.log(p)} for k, p in top.items()]})
    return out


class _Server:
    """Answers by (category word in the prompt, prompt kind); records every request."""

    def __init__(self, answers, *, reject_logprobs=False):
        self.answers = answers  # (category, kind) -> (content, logprobs content or None)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if reject_logprobs and body.get("logprobs"):
                    status, payload = 400, {"error": {"message": "logprobs not supported"}}
                else:
                    text = body["messages"][-1]["content"][0]["text"]
                    kind = ("perspective" if "Safety Status" in text else
                            "yesno" if '"yes"' in text else "classify" if "Classify" in text else "plain")
                    cat = next(c for c in ("violence", "sexual", "hate")
                               if get_category(c).definition in text)
                    content, lp = outer.answers[(cat, kind)]
                    choice = {"message": {"role": "assistant", "content": content}}
                    if lp is not None and body.get("logprobs"):
                        choice["logprobs"] = {"content": lp}
                    status, payload = 200, {"choices": [choice]}
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


UNSAFE_LP = _steps(["Unsafe"], {0: {"Unsafe": 0.8, "Safe": 0.2}})
ANSWERS = {
    # violence: three clear unsafe answers, two of them with log-probs
    ("violence", "plain"): ("Unsafe", UNSAFE_LP),
    ("violence", "classify"): ("unsafe.", _steps(["unsafe", "."], {0: {"unsafe": 0.6, "safe": 0.4}})),
    ("violence", "yesno"): ("Yes, it does.", _steps(["Yes", ",", " it"], {0: {"Yes": 0.7, "No": 0.1}})),
    # sexual: one safe, two hedged → unsure majority
    ("sexual", "plain"): ("Safe", None),
    ("sexual", "classify"): ("It might be unsafe.", None),
    ("sexual", "yesno"): ("I cannot tell.", None),
    # hate: safe vs unsafe vs garbage → a three-way tie → unsure
    ("hate", "plain"): ("Safe", None),
    ("hate", "classify"): ("Unsafe", None),
    ("hate", "yesno"): ("banana", None),
}


@pytest.fixture()
def server():
    s = _Server(ANSWERS)
    yield s
    s.close()


def _openai_card(tmp_path, url, **extra):
    card = {"type": "vlm", "backend": "openai", "base_url": url, "model": "canned",
            "categories": ["violence", "sexual", "hate"], "timeout": 5, "retries": 0, **extra}
    return str(write_vlm_card(tmp_path / "zs.json", card))


def test_openai_majority_vote_and_unsure(server, tmp_path):
    path = _openai_card(tmp_path, server.url)
    clf = load_classifier(path)
    assert isinstance(clf, Classifier) and isinstance(clf, VLMClassifier)
    assert clf.labels == ("violence", "sexual", "hate") == clf.unsafe_labels
    proba = clf.predict_proba([IMG, IMG])
    assert proba.shape == (2, 3) and proba.dtype == np.float32
    assert np.all((proba >= 0) & (proba <= 1))
    cats = clf.last_details[0]["categories"]
    assert len(clf.last_details) == 2
    v = cats["violence"]
    assert v["label"] == "unsafe" and v["votes"] == {"safe": 0, "unsafe": 3, "unsure": 0}
    # scored from the verdict token's probabilities, averaged over prompts
    assert v["score_source"] == "logprobs"
    assert v["score"] == pytest.approx(np.mean([0.8, 0.6, 0.7 / 0.8]), abs=1e-5)
    s = cats["sexual"]
    assert s["label"] == "unsure" and s["votes"] == {"safe": 1, "unsafe": 0, "unsure": 2}
    assert s["score_source"] == "votes" and s["score"] == pytest.approx(1 / 3, abs=1e-5)
    assert [a["reason"] for a in s["answers"]] == [None, "hedged", "hedged"]
    assert s["answers"][1]["raw"] == "It might be unsafe."
    h = cats["hate"]
    assert h["label"] == "unsure" and h["votes"] == {"safe": 1, "unsafe": 1, "unsure": 1}
    assert clf.last_details[0]["unsafe_categories"] == ["violence"]
    assert clf.last_details[0]["unsure_categories"] == ["sexual", "hate"]
    assert clf.unsafe_score(proba)[0] == pytest.approx(proba[0].max())
    # three phrasings per category, two images, logprobs requested, our system prompt
    assert len(server.requests) == 2 * 3 * 3
    body = server.requests[0]
    assert body["logprobs"] is True and body["messages"][0]["role"] == "system"
    assert body["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_openai_without_logprobs_falls_back_to_votes(tmp_path):
    srv = _Server(ANSWERS, reject_logprobs=True)
    try:
        clf = load_classifier(_openai_card(tmp_path, srv.url, unsure_weight=0.0))
        proba = clf.predict_proba([IMG])
    finally:
        srv.close()
    d = clf.last_details[0]["categories"]
    assert d["violence"]["score_source"] == "votes" and proba[0, 0] == 1.0
    assert d["sexual"]["score"] == 0.0  # unsure votes weigh 0 here
    assert not clf.use_logprobs
    assert sum(bool(r.get("logprobs")) for r in srv.requests) == 1  # asked once, then stopped


def test_openai_perspective_mode(tmp_path):
    toks = ["Safety", " Status", ":", " Unsafe", ",", " Unsafe", " Category", ":", " violence"]
    lp = _steps(toks, {3: {" Unsafe": 0.9, " Safe": 0.1}, 5: {" Unsafe": 0.5, " Safe": 0.5}})
    answers = {("violence", "perspective"): ("Safety Status: Unsafe, Unsafe Category: violence", lp),
               ("hate", "perspective"): ("Safety Status: Unsafe, Unsafe Category: violence", None)}
    srv = _Server(answers)
    try:
        clf = load_classifier(_openai_card(tmp_path, srv.url, mode="perspective",
                                           categories=["violence", "hate"]))
        proba = clf.predict_proba([IMG])
    finally:
        srv.close()
    d = clf.last_details[0]["categories"]
    assert d["violence"]["label"] == "unsafe" and d["violence"]["score"] == pytest.approx(0.9)
    # an answer naming a category it was not asked about is unsure, not unsafe
    assert d["hate"]["label"] == "unsure"
    assert d["hate"]["answers"][0]["reason"] == "unknown category"
    assert proba.shape == (1, 2)


def test_verdict_probability():
    assert verdict_probability(None) is None
    assert verdict_probability([("The", {"The": 0.0})]) is None
    steps = [("The", {"The": math.log(0.9)}), (" unsafe", {" unsafe": math.log(0.3), " safe": math.log(0.1)})]
    assert verdict_probability(steps) == pytest.approx(0.75)
    # tokenizers that split the word: "un" counts for unsafe, "s" for safe
    assert verdict_probability([("un", {"un": math.log(0.2), "s": math.log(0.2)})]) == pytest.approx(0.5)


def test_errors(tmp_path, server):
    with pytest.raises(CapabilityError, match="complete"):
        VLMClassifier(object())
    path = _openai_card(tmp_path, server.url)
    with pytest.raises(ModelLoadError, match="threshold"):
        load_classifier(path, threshold=1.5)
    with pytest.raises(ModelLoadError, match="prompts"):
        load_classifier(path, prompts=["Is {colour} safe?"])
    with pytest.raises(ModelLoadError, match="model_dir"):
        load_classifier(str(write_vlm_card(tmp_path / "t.json", {"type": "vlm"})))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_classifier(str(write_vlm_card(tmp_path / "t.json", {"type": "vlm", "model_dir": "nope"})))
    with pytest.raises(ModelLoadError, match="base_model"):
        load_classifier(str(write_vlm_card(tmp_path / "l.json", {"type": "vlm-lora"})))
    clf = load_classifier(path)
    with pytest.raises(InvalidParameterError, match="batch"):
        clf.predict_proba(IMG)
    assert not is_vlm_card(tmp_path / "missing.json")


# -- a tiny random LLaVA ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests.rationale import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("llava"))


def test_tiny_llava_end_to_end(llava_dir, tmp_path):
    card = write_vlm_card(tmp_path / "llava.json", {
        "type": "vlm", "backend": "transformers", "model_dir": str(llava_dir), "device": "cpu",
        "categories": ["sexual", "violence"], "max_new_tokens": 3,
    })
    clf = load_classifier(str(card))
    before = IMG.copy()
    proba = clf.predict_proba([IMG, IMG[::-1]])
    assert np.array_equal(IMG, before)
    assert proba.shape == (2, 2) and np.all((proba > 0) & (proba < 1))
    for d in clf.last_details:
        for cat in ("sexual", "violence"):
            c = d["categories"][cat]
            assert c["label"] in ("safe", "unsafe", "unsure")
            assert sum(c["votes"].values()) == 3 and len(c["answers"]) == 3
            # the random model's gibberish is unsure, but the first token still gives a score
            assert c["score_source"] == "logprobs"
            assert all(isinstance(a["raw"], str) for a in c["answers"])
    # greedy decoding is deterministic
    assert np.allclose(clf.predict_proba([IMG]), proba[:1])
    score = clf.unsafe_score(proba)
    assert score.shape == (2,)
    assert clf.config["type"] == "vlm" and clf.config["backend"] == "transformers"


def test_complete_reports_candidate_logprobs(llava_dir):
    from veil.rationale.hf import TransformersBackend

    b = TransformersBackend(llava_dir, device="cpu")
    text, steps = b.complete(IMG, "Is it safe?", max_new_tokens=2, top_k=3, candidates=["safe", "unsafe"])
    assert isinstance(text, str) and 1 <= len(steps) <= 2
    tok = b.tokenizer
    for chosen, alts in steps:
        assert chosen in alts and len(alts) >= 3
        for word in ("safe", "unsafe"):
            first = tok.decode([tok(word, add_special_tokens=False)["input_ids"][0]])
            assert first in alts and alts[first] <= 0.0
    # a forced prefix is appended as its own tokens
    enc = b.encode(IMG, b.format_prompt("Is it safe?"), continuation="Safety Status:", to_device=False)
    plain = b.encode(IMG, b.format_prompt("Is it safe?"), to_device=False)
    n = len(tok(" Safety Status:", add_special_tokens=False)["input_ids"])
    assert enc["input_ids"].shape[1] == plain["input_ids"].shape[1] + n
