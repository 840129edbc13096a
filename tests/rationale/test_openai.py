"""The openai backend against a local chat-completions server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from tests.rationale import make_result, model_output, region
from veil.errors import InvalidParameterError
from veil.rationale import BackendError, answer_questions, explain, load_backend


class _Server:
    """A scripted chat-completions endpoint: pops (status, body, headers) per request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple[int, object, dict]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, payload, headers = (
                    outer.script.pop(0) if outer.script else (200, None, {})
                )
                if payload == "hang":
                    outer.release.wait(5)  # longer than the client's timeout
                    payload = None
                if payload is None:
                    text = body["messages"][1]["content"][0]["text"]
                    payload = {"choices": [{"message": {"role": "assistant",
                                                        "content": f"ECHO {text[:60]}"}}]}
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = _Server()
    yield s
    s.close()


def _result():
    m = model_output("nsfw", {"neutral": 0.04, "porn": 0.96}, ["porn"])
    reg = region(1, 0, (30, 20, 30, 20), (60, 90))
    return make_result([m], regions=[reg])


def _backend(server, **kw):
    sleeps: list[float] = []
    opts = dict(base_url=server.url, model="tiny-vlm", timeout=2.0, retries=2, backoff=0.5,
                sleep=sleeps.append)
    opts.update(kw)
    return load_backend("openai", **opts), sleeps


def test_request_carries_image_control_and_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    backend, _ = _backend(server)
    r = _result()
    out = explain(r, backend=backend, questions=["What is happening in the image?"])
    assert out["backend"] == "openai"
    assert out["text"].startswith("ECHO Safety classifiers report: the image contains sexually")
    assert len(server.requests) == 2
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test-123"
    body = req["body"]
    assert body["model"] == "tiny-vlm"
    text_part, image = body["messages"][1]["content"]
    text = text_part["text"]
    assert "the image contains sexually explicit content" in text
    assert "a medium region in the centre" in text
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, r.image)
    assert "What is happening in the image?" in server.requests[1]["body"]["messages"][1]["content"][0]["text"]


def test_strength_zero_sends_plain_question(server):
    backend, _ = _backend(server)
    answer_questions(None, _result(), ["What are the people doing?"], backend=backend, strength=0)
    content = server.requests[0]["body"]["messages"][1]["content"]
    assert content[0] == {"type": "text", "text": "Question: What are the people doing?"}
    assert content[1]["type"] == "image_url"  # the result's image by default


def test_retries_with_backoff_then_succeeds(server):
    backend, sleeps = _backend(server)
    server.script = [(503, {"error": "busy"}, {}), (429, {"error": "slow"}, {"Retry-After": "0.25"})]
    out = explain(_result(), backend=backend)
    assert out["text"].startswith("ECHO")
    assert len(server.requests) == 3
    assert sleeps == [0.5, 0.25]  # doubled backoff, then Retry-After wins


def test_gives_up_after_retries(server):
    backend, sleeps = _backend(server, retries=1)
    server.script = [(500, {"e": 1}, {}), (500, {"e": 2}, {})]
    with pytest.raises(BackendError, match="HTTP 500.*2 attempts"):
        explain(_result(), backend=backend)
    assert sleeps == [0.5]


def test_client_error_not_retried(server):
    backend, sleeps = _backend(server)
    server.script = [(401, {"error": "bad key"}, {})]
    with pytest.raises(BackendError, match="HTTP 401.*bad key"):
        explain(_result(), backend=backend)
    assert len(server.requests) == 1 and sleeps == []


def test_timeout_is_bounded(server):
    backend, sleeps = _backend(server, timeout=0.3, retries=1)
    server.script = [(200, "hang", {}), (200, None, {})]
    out = explain(_result(), backend=backend)
    assert out["text"].startswith("ECHO") and sleeps == [0.5]


def test_garbage_response(server):
    backend, _ = _backend(server)
    server.script = [(200, b"not json", {})]
    with pytest.raises(BackendError, match="unexpected"):
        explain(_result(), backend=backend)


def test_unreachable_and_bad_options(monkeypatch):
    monkeypatch.delenv("VEIL_VLM_MODEL", raising=False)
    with pytest.raises(InvalidParameterError, match="model is required"):
        load_backend("openai", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InvalidParameterError, match="base_url"):
        load_backend("openai", base_url="ftp://x", model="m")
    b = load_backend("openai", base_url="http://127.0.0.1:1/v1", model="m", retries=0,
                     timeout=1.0)
    with pytest.raises(BackendError, match="cannot reach"):
        explain(_result(), backend=b)
