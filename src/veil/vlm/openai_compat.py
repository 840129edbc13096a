"""Any OpenAI-compatible chat-completions endpoint as a VLM transport.

Works with hosted APIs and local servers (vLLM, llama.cpp, Ollama, LM Studio)
that accept images as ``image_url`` parts. Uses only the standard library
(``urllib``): the image goes as a base64 PNG data URL. Requests time out and are
retried with exponential backoff on connection errors, 408/409/429 and 5xx.

Configuration falls back to the environment: ``VEIL_VLM_BASE_URL`` (then
``OPENAI_BASE_URL``), ``VEIL_VLM_MODEL`` and the API key in the variable
named by ``api_key_env`` (``OPENAI_API_KEY``). The control-code-conditioned rationale
writer built on it is :class:`veil.rationale.openai_compat.OpenAIBackend`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import Any

import numpy as np

from veil.errors import CapabilityError, InvalidParameterError
from veil.vlm.base import BackendError, Steps

__all__ = ["OpenAIVLM", "image_data_url"]

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def image_data_url(image: np.ndarray, *, max_side: int = 1024) -> str:
    """Encode an H×W×3 ``uint8`` image as a ``data:image/png;base64,…`` URL, downscaled to ``max_side``.

    Examples
    --------
    >>> image_data_url(np.zeros((2, 2, 3), np.uint8))[:22]
    'data:image/png;base64,'
    """
    from PIL import Image

    from veil.image import as_rgb_uint8

    img = Image.fromarray(as_rgb_uint8(image))
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIVLM:
    """Ask an OpenAI-compatible VLM endpoint.

    Parameters
    ----------
    base_url : str, optional
        Endpoint root such as ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
    model : str, optional
        Model name sent with each request; required here or in ``VEIL_VLM_MODEL``.
    api_key : str, optional
        Bearer token; defaults to the environment variable ``api_key_env``. Local servers
        usually need none.
    timeout : float
        Seconds per request.
    retries : int
        Extra attempts after a retryable failure.
    backoff : float
        First retry delay in seconds, doubled each time (capped at 30 s); a numeric
        ``Retry-After`` header wins.
    max_tokens, temperature : int, float
        Generation settings sent with each request.
    sleep : callable
        Used to wait between retries (tests pass a no-op).

    Examples
    --------
    >>> b = OpenAIVLM(base_url="http://127.0.0.1:9/v1", model="m")  # doctest: +SKIP
    """

    name = "openai"
    forces_prefix = False
    #: System message of :meth:`request_body` when none is given (subclasses set their own).
    default_system: str | None = None

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        max_side: int = 1024,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        url = base_url or os.environ.get("VEIL_VLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        url = url or "https://api.openai.com/v1"
        if not url.startswith(("http://", "https://")):
            raise InvalidParameterError(f"base_url must start with http:// or https://, got {url!r}")
        self.base_url = url.rstrip("/")
        self.model = model or os.environ.get("VEIL_VLM_MODEL")
        if not self.model:
            raise InvalidParameterError(
                "model is required for the openai backend; pass model=... (--vlm-model) "
                "or set VEIL_VLM_MODEL"
            )
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        if not timeout > 0:
            raise InvalidParameterError(f"timeout must be > 0 seconds, got {timeout}")
        if int(retries) < 0:
            raise InvalidParameterError(f"retries must be >= 0, got {retries}")
        if backoff < 0:
            raise InvalidParameterError(f"backoff must be >= 0, got {backoff}")
        if int(max_tokens) < 1:
            raise InvalidParameterError(f"max_tokens must be >= 1, got {max_tokens}")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.max_side = int(max_side)
        self._sleep = sleep

    # -- plumbing ---------------------------------------------------------------------------
    def request_body(
        self,
        image: np.ndarray | None,
        prompt: str,
        *,
        system: str | None | EllipsisType = ...,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
    ) -> dict[str, Any]:
        """The JSON body sent for one prompt (exposed for inspection and tests).

        ``system=None`` sends no system message (the default, ``...``, sends
        :attr:`default_system`); ``top_logprobs`` asks for token log-probabilities
        (``"logprobs": true``) with that many alternatives per token.
        """
        if isinstance(system, EllipsisType):
            system = self.default_system
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        if image is not None:
            content.append(
                {"type": "image_url", "image_url": {"url": image_data_url(image, max_side=self.max_side)}}
            )
        messages: list[dict[str, Any]] = [] if system is None else [{"role": "system", "content": system}]
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens if max_tokens is None else int(max_tokens),
            "temperature": self.temperature,
        }
        if top_logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = int(top_logprobs)
        return body

    def complete(
        self,
        image: np.ndarray | None,
        text: str,
        *,
        system: str | None = None,
        prefix: str | None = None,
        max_new_tokens: int = 16,
        top_logprobs: int | None = 5,
        candidates: Sequence[str] = (),
    ) -> tuple[str, Steps | None]:
        """Answer a plain ``text`` (no control code) with per-token log-probabilities when served.

        Returns the answer and, when the endpoint returned ``logprobs``, one
        ``(token, {alternative: log-prob})`` entry per generated token (else ``None``).
        ``top_logprobs=None`` does not ask for them (for servers that reject the option).
        An endpoint cannot force the start of the answer (``forces_prefix`` is False):
        ``prefix`` must be None; ``candidates`` are not scored (only the top alternatives are).
        """
        if prefix:
            raise CapabilityError(
                f"the openai backend cannot force the answer prefix {prefix!r}; "
                "use the transformers backend for a forced prefix"
            )
        body = self.request_body(image, text, system=system, max_tokens=max_new_tokens,
                                 top_logprobs=top_logprobs)
        obj = self._post(body)
        answer = self._content(obj, json.dumps(obj)[:200].encode())
        steps: list[tuple[str, dict[str, float]]] | None = None
        try:
            items = obj["choices"][0]["logprobs"]["content"]
        except (KeyError, IndexError, TypeError):
            items = None
        if isinstance(items, list) and items:
            steps = []
            for it in items:
                if not isinstance(it, dict) or "token" not in it:
                    steps = None
                    break
                alts = {str(a["token"]): float(a["logprob"]) for a in it.get("top_logprobs") or []
                        if isinstance(a, dict) and "token" in a and "logprob" in a}
                if "logprob" in it:
                    alts.setdefault(str(it["token"]), float(it["logprob"]))
                steps.append((str(it["token"]), alts))
        return answer, steps

    def ask(self, image: np.ndarray | None, prompt: str) -> str:
        """The answer to ``prompt`` about ``image`` (with :attr:`default_system`)."""
        obj = self._post(self.request_body(image, prompt))
        return self._content(obj, json.dumps(obj)[:200].encode())

    def _post(self, body: dict[str, Any]) -> Any:
        """POST ``body`` with retries; the decoded JSON response."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.retries + 1):
            delay = min(30.0, self.backoff * (2**attempt))
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    payload = resp.read()
                try:
                    return json.loads(payload)
                except ValueError:
                    snippet = payload[:200].decode("utf-8", "replace")
                    raise BackendError(f"unexpected chat-completions response: {snippet!r}") from None
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {exc.code} from {url}: {detail}"
                if exc.code not in _RETRY_STATUS:
                    raise BackendError(last) from None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.strip().replace(".", "", 1).isdigit():
                    delay = min(30.0, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"cannot reach {url}: {reason}"
            if attempt < self.retries:
                self._sleep(delay)
        raise BackendError(f"{last} (gave up after {self.retries + 1} attempts)")

    @staticmethod
    def _content(obj: Any, payload: bytes) -> str:
        try:
            content = obj["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            snippet = payload[:200].decode("utf-8", "replace")
            raise BackendError(f"unexpected chat-completions response: {snippet!r}") from exc
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise BackendError(f"unexpected message content type {type(content).__name__}")
        return content.strip()
