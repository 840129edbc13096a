"""veil.vlm: the one transport contract both backends satisfy."""

from __future__ import annotations

import numpy as np
import pytest

from veil.classify.vlm import VLMClassifier
from veil.errors import CapabilityError, UnknownNameError
from veil.vlm import VLM_BACKENDS, VLMBackend, load_vlm
from veil.vlm.openai_compat import OpenAIVLM


def test_registry_lists_both_transports():
    assert VLM_BACKENDS.names() == ["openai", "transformers"]
    with pytest.raises(UnknownNameError, match="openai, transformers"):
        load_vlm("nope")


def test_openai_transport_is_a_backend_without_forced_prefix():
    b = load_vlm("openai", base_url="http://127.0.0.1:9/v1", model="m")
    assert isinstance(b, OpenAIVLM) and isinstance(b, VLMBackend)
    assert b.forces_prefix is False
    with pytest.raises(CapabilityError, match="Safety Status:"):
        b.complete(np.zeros((4, 4, 3), np.uint8), "Is it safe?", prefix="Safety Status:")
    # the transport sends no system message unless asked; the rationale writer sends its own
    assert b.request_body(None, "hi")["messages"][0]["role"] == "user"
    from veil.rationale.openai_compat import OpenAIBackend

    r = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m")
    assert r.request_body(None, "hi")["messages"][0]["role"] == "system"
    assert r.request_body(None, "hi", system=None)["messages"][0]["role"] == "user"


def test_transformers_transport_declares_forced_prefix():
    from veil.vlm.hf import TransformersVLM

    assert TransformersVLM.forces_prefix is True
    assert TransformersVLM.name == "transformers"


class _Scripted:
    """A backend that answers from a script: the classifier needs nothing more than the Protocol."""

    name = "scripted"
    forces_prefix = False

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.calls: list[dict] = []

    def complete(self, image, text, *, system=None, prefix=None, max_new_tokens=16, top_logprobs=None,
                 candidates=()):
        self.calls.append({"system": system, "prefix": prefix, "top_logprobs": top_logprobs})
        return self.answer, None


def test_classifier_uses_any_protocol_backend():
    b = _Scripted("Unsafe.")
    assert isinstance(b, VLMBackend)
    clf = VLMClassifier(b, categories=["violence"], prompts=["Is {title} shown? Answer safe or unsafe."])
    proba = clf.predict_proba([np.zeros((8, 8, 3), np.uint8)])
    assert proba.tolist() == [[1.0]]
    assert b.calls[0]["prefix"] is None and b.calls[0]["top_logprobs"] == 5


def test_classifier_refuses_a_non_backend_naming_the_type():
    class NoPrefixFlag:
        name = "x"

        def complete(self, image, text, **kw):
            return "", None

    with pytest.raises(CapabilityError, match="NoPrefixFlag"):
        VLMClassifier(NoPrefixFlag())
