"""The openai backend against real servers on loopback: ``transformers serve`` on the shallow
LLM fixture (started once for the module), and for the faults a small HTTP server of this
module's own that answers each route its own way (an error status, garbage events, a
connection closed mid-stream, a stall). Headers: parsed, expanded from the environment,
and never shown. No timing assertions beyond the order of clock readings and a refused
connection answering within seconds where the read timeout is a minute."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES

from perfgate import backends
from perfgate.backends.base import BackendOptions
from perfgate.backends.headers import expand_headers, redact
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError, WorkerError
from perfgate.worker import InProcessWorker
from perfgate.worker.process import SubprocessWorker
from perfgate.worker.protocol import LoadModel, LoadRequest, RunGenerations, RunRequests, SetPrompts, requests_timeout

# the module starts `transformers serve` once: 7-41 s on a busy 2-core machine
pytestmark = pytest.mark.slow

SHALLOW = FIXTURES / "llm" / "tiny_llama_shallow"
ONE_THREAD = BackendOptions(threads=1)
N = 6
SECRET = "sk-live-7f3a9c1e5b2d4680"
needs_client = pytest.mark.skipif(
    importlib.util.find_spec("httpx_sse") is None, reason="the endpoints extra (httpx, httpx-sse) is not installed"
)
needs_serve = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("transformers", "fastapi", "uvicorn", "httpx_sse")),
    reason="transformers serve needs transformers[serving]",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backend(url: str, headers=(), read_timeout_s: float | None = None):
    from perfgate.backends.openai_endpoint import OpenAIEndpointBackend

    found = OpenAIEndpointBackend(ONE_THREAD)
    found.headers = headers
    if read_timeout_s is not None:
        found.read_timeout_s = read_timeout_s
    found.setup()
    found.load(url)
    return found


def assert_one_line(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message and SECRET not in message


# --- transformers serve ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``transformers serve`` on the shallow fixture, ready once GET /health answers: the forced
    model is loaded before uvicorn listens. Stopped with SIGINT, its clean stop."""
    import httpx

    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [str(Path(sys.executable).parent / "transformers"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu", str(SHALLOW)]  # fmt: skip
    began = time.monotonic()
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited {server.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() - began > 240:
                pytest.fail(f"transformers serve was not ready within 240 s: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        print(f"\ntransformers serve ready after {time.monotonic() - began:.1f} s")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def served_backend(served):
    found = backend(served)
    yield found
    found.close()


@needs_serve
@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_a_streamed_request_gives_n_tokens_counted_by_usage_each_chunk_stamped(served_backend, chat):
    prompt = served_backend.prepare_prompt("Write a short poem about the sea.", chat=chat)
    generation = served_backend.generate_timed(prompt, N, time.perf_counter_ns)
    assert (generation.new_tokens, generation.counted_by, generation.output_ids) == (N, "usage", ())
    assert 1 <= len(generation.token_ns) <= N  # a chunk may carry several tokens, never less than one
    stamps = [generation.started_ns, *generation.token_ns]
    assert all(earlier < later for earlier, later in zip(stamps, stamps[1:]))  # TTFT and every gap positive
    assert generation.token_ns[-1] <= generation.ended_ns
    assert generation.output_text and generation.prompt_tokens > 0
    # transformers serve refuses vLLM's fields (422) and takes its own generation_config
    assert served_backend.exact_tokens_by == "generation_config min_new_tokens"


@needs_serve
@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_greedy_answers_are_the_same_text_twice(served_backend, chat):
    prompt = served_backend.prepare_prompt("Tell me about the mountains.", chat=chat)
    first, second = (served_backend.generate_timed(prompt, N, time.perf_counter_ns) for _ in range(2))
    assert first.output_text == second.output_text != ""


@needs_serve
def test_the_only_served_model_is_found_and_a_named_one_is_checked(served):
    assert backend(served).info().details["served_model"] == str(SHALLOW)
    assert backend(f"{served}#{SHALLOW}").info().details["served_model"] == str(SHALLOW)
    with pytest.raises(UsageError) as caught:
        backend(f"{served}#no-such-model")
    assert caught.value.message == f"{served} serves no model 'no-such-model'; it serves: {str(SHALLOW)!r}"


@needs_serve
def test_token_ids_the_server_refuses_ask_for_a_text_column(served_backend):
    with pytest.raises(UsageError) as caught:
        served_backend.generate_timed(served_backend.prepare_prompt([17, 4, 250]), N, time.perf_counter_ns)
    assert caught.value.message.startswith(f"{served_backend._endpoint.shown} refused token ids as a prompt (HTTP 400: ")
    assert caught.value.message.endswith("use a text column for the prompts")
    assert_one_line(caught.value.message)


@needs_serve
def test_a_worker_process_times_requests_and_keeps_its_headers_secret(served, tmp_path):
    worker = SubprocessWorker("candidate", tmp_path)
    worker.start(1, None)
    headers = expand_headers(["Authorization: Bearer ${PERFGATE_TEST_TOKEN}"], "candidate", {"PERFGATE_TEST_TOKEN": SECRET})
    request = LoadRequest("openai", served, ONE_THREAD, tuple(sys.path), headers=headers)
    assert SECRET not in repr(request) and SECRET not in str(LoadModel(request))
    try:
        info = worker.call(LoadModel(request), timeout=120)
        assert info.backend.backend == "openai" and SECRET not in repr(info)
        assert worker.call(SetPrompts(("Hello there.", "Tell me a story.")), timeout=60) == (None, None)
        timings = worker.call(RunRequests((0, 1, 0), N), timeout=requests_timeout(60.0, 3))
        assert [(timing.prompt, timing.tokens, timing.counted_by) for timing in timings] == [(0, N, "usage"), (1, N, "usage"), (0, N, "usage")]
        assert all(timing.ttft_ns > 0 and all(gap > 0 for gap in timing.gaps_ns) for timing in timings)
        texts = worker.call(RunGenerations((0, 0), N), timeout=60)
        assert texts[0] == texts[1] and isinstance(texts[0], str) and texts[0]
        worker.call(SetPrompts(((1, 2, 3),)), timeout=60)
        with pytest.raises(UsageError) as caught:
            worker.call(RunRequests((0,), N), timeout=60)
        assert caught.value.message.startswith("candidate: ") and "use a text column" in caught.value.message
        assert_one_line(caught.value.message)
        assert SECRET not in (caught.value.details or "")
    finally:
        worker.close()
    assert SECRET not in worker.log_path.read_text(errors="replace")


# --- a server of faults -------------------------------------------------------------------------


class Faults(http.server.BaseHTTPRequestHandler):
    """Each route's first path segment says how to answer: /ok/v1, /status500/v1, ...; the
    requests it got (path, headers, body) are kept in ``seen``."""

    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        mode = self.path.split("/")[1]
        models = {"several": ["small", "large"], "none": []}.get(mode, ["fake"])
        if mode == "models404":
            return self._send(404, "application/json", json.dumps({"detail": "Not Found"}))
        if mode == "modelsjunk":
            return self._send(200, "text/html", "<html>hello</html>")
        self._send(200, "application/json", json.dumps({"object": "list", "data": [{"id": name} for name in models]}))

    def do_POST(self) -> None:
        mode = self.path.split("/")[1]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Faults.seen.append((self.path, dict(self.headers), body))
        authorization = self.headers.get("Authorization", "")
        if mode == "status500":
            return self._send(500, "text/plain", "Internal Server Error\nat line 2")
        if mode == "status401":  # echoes the key it refused, as some servers do
            return self._send(401, "application/json", json.dumps({"error": {"message": f"invalid key {authorization}"}}))
        if mode == "strict" and any(name in body for name in ("ignore_eos", "min_tokens", "generation_config")):
            return self._send(422, "application/json", json.dumps({"detail": f"Unexpected fields: {sorted(body)}"}))
        if mode == "json":
            return self._send(200, "application/json", json.dumps({"choices": [{"text": "whole"}]}))
        events = {
            "bytesonly": [json.dumps({"choices": [{"text": ""}]}), json.dumps({"choices": [], "usage": {"completion_tokens": 4}})],
            "garbage": ["not json at all"],
            "nochoices": [json.dumps({"id": "x", "object": "text_completion"})],
            "midstream": [json.dumps({"choices": [{"text": "a"}]}), json.dumps({"error": "CUDA out of memory"})],
        }.get(mode, [json.dumps({"choices": [{"delta": {"role": "assistant"}}]})]
              + [json.dumps({"choices": [{"text": word}]}) for word in ("one", "", " two", " three")]
              + [json.dumps({"choices": [], "usage": {"completion_tokens": 4, "prompt_tokens": 2}}) if mode != "nousage" else "[DONE]"])  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, data in enumerate(events):
            if mode == "cut" and index == 2:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # no last chunk: the body ends mid-way
                self.close_connection = True
                return
            if mode == "stall" and index == 2:
                time.sleep(3)
            self._chunk(f"data: {data}\n\n")
        self._chunk("")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _send(self, status: int, content_type: str, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that left a stalled stream: the test has seen what it wanted


@pytest.fixture(scope="module")
def faults():
    server = QuietServer(("127.0.0.1", 0), Faults)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_client
def test_a_stream_without_done_or_usage_is_counted_by_its_chunks_and_empty_ones_are_no_token(faults):
    generation = backend(f"{faults}/ok/v1").generate_timed(backend(f"{faults}/ok/v1").prepare_prompt("hi"), 4, time.perf_counter_ns)
    assert (generation.new_tokens, generation.counted_by, generation.output_text) == (4, "usage", "one two three")
    assert len(generation.token_ns) == 3  # the role-only and the empty chunks carry no token
    counted = backend(f"{faults}/nousage/v1")
    generation = counted.generate_timed(counted.prepare_prompt("hi"), 4, time.perf_counter_ns)
    assert (generation.new_tokens, generation.counted_by, len(generation.token_ns)) == (3, "chunks", 3)


@needs_client
def test_each_request_asks_for_exactly_n_tokens_in_the_first_way_the_server_takes(faults):
    Faults.seen.clear()
    strict = backend(f"{faults}/strict/v1")
    prompt = strict.prepare_prompt([5, 6])
    assert strict.generate_timed(prompt, 4, time.perf_counter_ns).new_tokens == 4
    tried = [(body.get("ignore_eos"), body.get("min_tokens"), body.get("generation_config")) for _, _, body in Faults.seen]
    assert tried == [(True, 4, None), (None, None, '{"min_new_tokens": 4}'), (None, None, None)]
    assert strict.exact_tokens_by.startswith("max_tokens alone")
    strict.generate_timed(prompt, 4, time.perf_counter_ns)  # remembered: one request, as plain as the last
    assert len(Faults.seen) == 4 and "generation_config" not in Faults.seen[-1][2]
    _, _, body = Faults.seen[-1]
    assert (body["prompt"], body["max_tokens"], body["temperature"], body["stream"], body["stream_options"]) == (
        [5, 6], 4, 0, True, {"include_usage": True}
    )
    Faults.seen.clear()
    lenient = backend(f"{faults}/ok/v1")
    lenient.generate_timed(lenient.prepare_prompt("hi", chat=True), 4, time.perf_counter_ns)
    path, _, body = Faults.seen[0]
    assert path == "/ok/v1/chat/completions" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert (body["ignore_eos"], body["min_tokens"], body["model"]) == (True, 4, "fake")


@needs_client
@pytest.mark.parametrize(
    "mode,error,fragment",
    [
        ("status500", WorkerError, "answered HTTP 500 to POST /completions: Internal Server Error"),
        ("status401", UsageError, "answered HTTP 401 to POST /completions: invalid key [redacted]"),
        ("garbage", WorkerError, "streamed an event that is not JSON (POST /completions): not json at all"),
        ("nochoices", WorkerError, "streamed an event without choices, so not a completion chunk (POST /completions)"),
        ("midstream", WorkerError, "reported an error in the middle of its answer (POST /completions): CUDA out of memory"),
        ("cut", WorkerError, "the connection was closed in the middle of the answer, after 1 chunks with text (POST /completions)"),
        ("json", WorkerError, "answered POST /completions with 'application/json', not an event stream"),
        ("bytesonly", WorkerError, "streamed no text (POST /completions) though it reports 4 new tokens"),
    ],
)
def test_a_failing_request_is_one_line_of_the_right_class_without_the_secret(faults, mode, error, fragment):
    served = backend(f"{faults}/{mode}/v1", headers=(("Authorization", f"Bearer {SECRET}"), ("X-Api-Key", SECRET)))
    with pytest.raises(error) as caught:
        served.generate_timed(served.prepare_prompt("hi"), 4, time.perf_counter_ns)
    message = caught.value.message
    assert message.startswith(f"{faults}/{mode}/v1") or message.startswith(f"model endpoint {faults}/{mode}/v1")
    assert fragment in message, message
    assert_one_line(message) and "sk-live" not in message
    error = caught.value  # no httpx error (nor its request) chained to it, for a traceback to show
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@needs_client
def test_a_stalled_stream_ends_at_the_read_timeout(faults):
    stalled = backend(f"{faults}/stall/v1", read_timeout_s=0.5)
    with pytest.raises(WorkerError) as caught:
        stalled.generate_timed(stalled.prepare_prompt("hi"), 4, time.perf_counter_ns)
    assert caught.value.message == (
        f"model endpoint {faults}/stall/v1: the server sent nothing for 0.5 s, so the request was given up (POST /completions)"
    )


@needs_client
@pytest.mark.parametrize(
    "mode,error,message",
    [
        ("several", UsageError, "{url} serves 2 models ('small', 'large'); name the one to run: {url}#NAME, e.g. {url}#small"),
        ("none", UsageError, "{url} lists no model (GET /models); name the one to run: {url}#NAME"),
        ("models404", UsageError, "{url} answered HTTP 404 to GET /models: Not Found"),
        ("modelsjunk", ModelLoadError, "model endpoint {url} answered GET /models with no model list"),
    ],
)
def test_the_model_list_decides_which_model_runs_or_says_what_to_write(faults, mode, error, message):
    url = f"{faults}/{mode}/v1"
    with pytest.raises(error) as caught:
        backend(url)
    assert caught.value.message.startswith(message.format(url=url))
    assert_one_line(caught.value.message)
    if mode in ("several", "none"):  # a name the list holds, or one a server that lists none may load
        assert backend(f"{url}#large").info().details["served_model"] == "large"


@needs_client
def test_a_closed_port_is_connection_refused_at_once(tmp_path):
    port = free_port()  # bound, then closed: nothing listens there
    began = time.monotonic()
    with pytest.raises(ModelLoadError) as caught:
        backend(f"http://127.0.0.1:{port}/v1")
    assert time.monotonic() - began < 10  # the read timeout is 60 s
    assert caught.value.message == f"cannot reach model endpoint http://127.0.0.1:{port}/v1: connection refused (GET /models)"
    worker = SubprocessWorker("reference", tmp_path)
    worker.start(1, None)
    try:
        request = LoadRequest("openai", f"http://127.0.0.1:{port}/v1", ONE_THREAD, tuple(sys.path), headers=(("Authorization", SECRET),))
        with pytest.raises(ModelLoadError) as caught:
            worker.call(LoadModel(request), timeout=60)
    finally:
        worker.close()
    assert caught.value.message == f"reference: cannot reach model endpoint http://127.0.0.1:{port}/v1: connection refused (GET /models)"
    assert SECRET not in (caught.value.details or "") and SECRET not in worker.log_path.read_text(errors="replace")


@needs_client
def test_the_headers_reach_the_server_through_the_worker(faults):
    Faults.seen.clear()
    worker = InProcessWorker("candidate")
    worker.call(LoadModel(LoadRequest("openai", f"{faults}/ok/v1#fake", ONE_THREAD, headers=(("X-Api-Key", SECRET),))))
    worker.call(SetPrompts(("hi",)))
    assert worker.call(RunGenerations((0,), 4)) == ["one two three"]
    assert Faults.seen[0][1]["X-Api-Key"] == SECRET
    worker.close()


@needs_client
def test_a_secret_the_server_echoes_stays_out_of_a_worker_process_s_error_and_log(faults, tmp_path):
    worker = SubprocessWorker("candidate", tmp_path)
    worker.start(1, None)
    headers = expand_headers(["Authorization: Bearer $PERFGATE_TEST_TOKEN"], "candidate", {"PERFGATE_TEST_TOKEN": SECRET})
    try:
        worker.call(LoadModel(LoadRequest("openai", f"{faults}/status401/v1", ONE_THREAD, tuple(sys.path), headers=headers)), timeout=60)
        worker.call(SetPrompts(("hi",)), timeout=60)
        with pytest.raises(UsageError) as caught:
            worker.call(RunRequests((0,), 4), timeout=60)
    finally:
        worker.close()
    assert caught.value.message == f"candidate: {faults}/status401/v1 answered HTTP 401 to POST /completions: invalid key [redacted]"
    assert SECRET not in (caught.value.details or "") and "sk-live" not in worker.log_path.read_text(errors="replace")


def test_headers_for_a_backend_that_sends_no_http_are_refused():
    from fakes import TinyBackend
    from perfgate.worker import WorkerCore

    worker = InProcessWorker("candidate", WorkerCore(backend_factory=lambda name, options: TinyBackend(options)))
    with pytest.raises(UsageError, match="the tiny backend sends no HTTP requests: headers are for served models"):
        worker.call(LoadModel(LoadRequest("tiny", "m.onnx", ONE_THREAD, headers=(("X-Api-Key", SECRET),))))


# --- headers ------------------------------------------------------------------------------------


def test_headers_are_parsed_and_expanded_from_the_environment():
    environ = {"TOKEN": SECRET, "ORG": "acme"}
    assert expand_headers(
        ["Authorization: Bearer ${TOKEN}", "X-Org:$ORG-team", "X-Price: $$5 ${ORG}", "X-Empty:"], "candidate", environ
    ) == (("Authorization", f"Bearer {SECRET}"), ("X-Org", "acme-team"), ("X-Price", "$5 acme"), ("X-Empty", ""))
    assert expand_headers([], "reference", environ) == ()


@pytest.mark.parametrize(
    "line,message",
    [
        ("Authorization: Bearer ${TOKEN}", "candidate: header Authorization: environment variable TOKEN is not set"),
        ("Authorization: $TOKEN", "candidate: header Authorization: environment variable TOKEN is not set"),
        ("X-Key: ${}", "candidate: header X-Key: ${...} names no environment variable (letters, digits and _)"),
        (f"Bearer {SECRET}", "candidate: header 1 is not 'Name: value' (e.g. 'Authorization: Bearer ${TOKEN}')"),
        (f": {SECRET}", "candidate: header 1 is not 'Name: value'"),
        (f"Bad Name: {SECRET}", "candidate: header 1: its name is no HTTP header name"),
        ("X-Key: ${NEWLINE}", "candidate: header X-Key: its value holds a character HTTP headers cannot carry"),
        ("X-Key: café", "candidate: header X-Key: its value holds a character HTTP headers cannot carry"),
    ],
)
def test_a_header_that_cannot_be_sent_is_a_usage_error_that_shows_no_value(line, message):
    with pytest.raises(UsageError) as caught:
        expand_headers([line], "candidate", {"NEWLINE": f"{SECRET}\r\nX-Injected: 1", "OTHER": SECRET})
    assert caught.value.message.startswith(message)
    assert_one_line(caught.value.message) and "café" not in caught.value.message


def test_redact_takes_out_whole_values_and_their_long_words():
    headers = (("Authorization", f"Bearer {SECRET}"), ("X-Short", "abc"))
    assert redact(f"bad key {SECRET}; header was 'Bearer {SECRET}'", headers) == "bad key [redacted]; header was '[redacted]'"
    # a short value (a flag) is no secret told apart from ordinary words: HTTP 401 keeps its 1
    assert redact("abc: HTTP 401", (("X-Flag", "1"), ("X-Short", "abc"))) == "abc: HTTP 401"
    assert redact("nothing here", ()) == "nothing here"


# --- the path: a URL is an endpoint, never a file -----------------------------------------------


def test_an_http_url_is_an_endpoint_never_looked_at_as_a_file(monkeypatch):
    import perfgate.backends.openai_endpoint  # noqa: F401  (imported before the file system is closed off)

    def no_file_system(*args, **kwargs):
        raise AssertionError("a URL was looked at as a file")

    monkeypatch.setattr(os, "stat", no_file_system)
    monkeypatch.setattr(Path, "is_dir", no_file_system)
    monkeypatch.setattr(Path, "exists", no_file_system)
    for url in ("http://127.0.0.1:8000/v1", "https://api.example.com/v1#meta/llama-3", "HTTP://host/v1/"):
        assert backends.backend_for_path(url) == "openai"
        assert backends.resolve_backend_name(url, None) == "openai"
        assert backends.model_file(url) == url == backends.model_file(url, "openai")
        assert backends.require_model(url, None, "candidate") is None
        assert backends.require_model(url, "openai", "candidate") is None


@pytest.mark.parametrize(
    "path,requested,message",
    [
        ("ftp://host/v1", None, "model 'ftp://host/v1': a served model is reached over http:// or https://, not ftp://"),
        ("s3://bucket/v1", "openai", "model 's3://bucket/v1': a served model is reached over http:// or https://, not s3://"),
        ("http:///v1", None, "model URL 'http:///v1' names no host"),
        ("http://host:port/v1", None, "model URL 'http://host:port/v1': its port is no number"),
        ("http://user:pw@host/v1", "onnxruntime", "'http://host/v1' is a served model's URL: the onnxruntime backend takes a model file"),
        ("model.onnx", "openai", "'model.onnx': the openai backend takes a served model's URL, e.g. http://127.0.0.1:8000/v1"),
    ],
)
def test_a_url_no_endpoint_can_be_is_one_line_usage_error(path, requested, message):
    with pytest.raises(UsageError) as caught:
        if requested is None:
            backends.resolve_backend_name(path, None)
        backends.require_model(path, requested, "candidate")
    assert caught.value.message.startswith(message)
    assert_one_line(caught.value.message) and "pw@" not in caught.value.message


def test_the_url_s_fragment_names_the_model_and_user_info_is_never_shown():
    from perfgate.backends.openai_endpoint import parse_endpoint

    endpoint = parse_endpoint("https://user:pw@api.example.com:8443/v1/#meta-llama%2FLlama-3")
    assert (endpoint.base, endpoint.model, endpoint.shown) == (
        "https://user:pw@api.example.com:8443/v1", "meta-llama/Llama-3", "https://api.example.com:8443/v1"
    )
    assert parse_endpoint("http://h/v1#").model is None


def test_a_missing_httpx_gives_the_install_hint(monkeypatch):
    entry = backends.BUILTIN_BACKENDS["openai"]
    monkeypatch.setitem(backends.BUILTIN_BACKENDS, "openai", backends.BackendEntry(entry.target, "httpx_sse_not_here", entry.extra, entry.suffixes))
    with pytest.raises(BackendUnavailableError, match=r"pip install 'perfgate\[endpoints\]'"):
        backends.load_backend_class("openai")
    from perfgate.backends.openai_endpoint import OpenAIEndpointBackend

    monkeypatch.setitem(sys.modules, "httpx_sse", None)
    with pytest.raises(BackendUnavailableError, match=r"needs httpx and httpx-sse .*: pip install 'perfgate\[endpoints\]'"):
        OpenAIEndpointBackend(ONE_THREAD).setup()


def test_importing_perfgate_and_the_backend_module_imports_no_http_client():
    code = (
        "import sys, perfgate, perfgate.backends.openai_endpoint, perfgate.backends.headers, perfgate.worker.core; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpx_sse', 'httpcore')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})  # fmt: skip
    assert result.stdout.strip() == "[]"


class Hardware(Faults):
    """A server that says what it runs on, as Text Generation Inference's GET /info does:
    /cuda/v1 and /cpu/v1 name their device; /silent/v1 has no /info."""

    def do_GET(self) -> None:
        mode = self.path.split("/")[1]
        if self.path.endswith("/info"):
            if mode == "silent":
                return self._send(404, "application/json", json.dumps({"detail": "Not Found"}))
            return self._send(200, "application/json", json.dumps({"model_device_type": mode, "model_dtype": "torch.float16"}))
        super().do_GET()


@needs_client
def test_what_a_server_says_of_its_hardware_is_reported_and_a_difference_warned(tmp_path):
    from perfgate import compare

    server = QuietServer(("127.0.0.1", 0), Hardware)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        cuda, cpu, silent = (backend(f"{root}/{mode}/v1") for mode in ("cuda", "cpu", "silent"))
        assert cuda.info().details["server_hardware"] == "cuda, torch.float16"
        assert "server_hardware" not in silent.info().details
        data = tmp_path / "prompts.parquet"
        pq.write_table(pa.table({"prompt": ["hello", "there"]}), data)
        report = compare(f"{root}/cuda/v1", f"{root}/cpu/v1", str(data), max_new_tokens=4, time_budget_s=2.0)
        assert any("the two endpoints answer from different hardware" in w and "candidate: cpu, torch.float16" in w
                   for w in report.warnings)  # fmt: skip
        same = compare(f"{root}/cuda/v1", f"{root}/cuda/v1", str(data), max_new_tokens=4, time_budget_s=2.0)
        assert not any("different hardware" in w for w in same.warnings)
    finally:
        server.shutdown()
        server.server_close()
