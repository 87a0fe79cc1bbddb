"""A served model behind an OpenAI-compatible HTTP API (vLLM, SGLang, TGI, llama.cpp's server,
``transformers serve``, ...), timed from perfgate's worker process as a client would see it.

The model "path" is the API's base URL, ``http(s)://host:port/v1``, with ``#NAME`` for the
served model's name; without it, the one model ``GET {base}/models`` lists. Headers (an API
key) come from ``backends/headers.py`` through ``LoadRequest.headers``; the worker sets
``headers`` before ``load``. TLS is verified (httpx's default). One ``httpx.Client`` serves
every request, so the connection is kept alive and no request after the first pays its set-up.

A request is streamed (``stream: true``) with ``temperature: 0`` and ``max_tokens: N``; a text
prompt goes to ``/completions`` (``/chat/completions`` with one user message where ``chat``),
token ids to ``/completions`` as the ``prompt`` array the API allows. Each server-sent event is
stamped as it arrives; one that carries new text is a token's stamp (the first: time to first
token). A chat stream's first event (the role alone) and the last ones (finish reason, usage)
carry none. Tokens are counted by the streamed ``usage.completion_tokens`` (asked for with
``stream_options.include_usage``; ``counted_by="usage"``), else one per event with text
(``"chunks"``): a server holds back a token that ends mid-character and sends it with the next,
so an event may carry several (``transformers serve``: 32 tokens in 18-21 events). The stream
may end with ``data: [DONE]`` or, as ``transformers serve`` does, without it: the body's end.

Exactly N tokens: the API's ``max_tokens`` is a ceiling, and a server stops early at end of
sequence. The servers' own ways to hold it off are tried in order on the first request, and the
first one the server takes is kept for the backend's life: vLLM's (and SGLang's) ``ignore_eos``
with ``min_tokens``; then ``transformers serve``'s ``generation_config`` (a JSON string of
generate's arguments: ``min_new_tokens``), as it answers 422 "Unexpected fields" to the first;
then ``max_tokens`` alone. A 400 or 422 whose message names the fields tried is that refusal;
the request is sent again at once without them, its clock started afresh.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from perfgate.backends.base import BackendInfo, Generation, GenerativeBackend
from perfgate.backends.headers import Headers, redact
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError, WorkerError, first_line

INSTALL_HINT = "pip install 'perfgate[endpoints]'"
# A stream that sends nothing this long has stalled: perfgate's default call timeout (60 s),
# so that such a request ends as its own one-line error where the parent's limit for a block
# of requests (worker/protocol.py requests_timeout, at least a call timeout per request) is longer.
READ_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0  # a host that does not answer a connection at all
INFO_TIMEOUT_S = 2.0  # what a server says of its hardware: asked once, briefly, at load
SERVER_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Endpoint:
    base: str  # http(s)://host:port/v1, no trailing slash, no fragment
    model: str | None  # the served model's name after '#', if given
    shown: str  # the base as messages show it: no user name or password


def is_url(path: object) -> bool:
    """Whether ``path`` is written as a URL (``scheme://...``), whatever its scheme."""
    if not isinstance(path, str):
        return False
    scheme, sep, _ = path.partition("://")
    return bool(sep and scheme and scheme[0].isalpha() and all(c.isalnum() or c in "+.-" for c in scheme))


def parse_endpoint(path: str) -> Endpoint:
    """The base URL and model name a served model's "path" names; a UsageError for any
    other scheme than http(s), a URL without a host, or a port that is no number."""
    parts = urllib.parse.urlsplit(path)
    shown = _without_userinfo(parts)
    example = "e.g. http://127.0.0.1:8000/v1, with #NAME for the served model's name"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise UsageError(f"model {shown!r}: a served model is reached over http:// or https://, not {scheme} ({example})")
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise UsageError(f"model URL {shown!r}: its port is no number from 0 to 65535 ({example})") from None
    if not host:
        raise UsageError(f"model URL {shown!r} names no host ({example})")
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))
    model = urllib.parse.unquote(parts.fragment) or None
    return Endpoint(base, model, _without_userinfo(urllib.parse.urlsplit(base)))


def shown_url(path: str) -> str:
    """A URL as messages show it: without the user name and password it may carry."""
    return _without_userinfo(urllib.parse.urlsplit(path))


def _without_userinfo(parts: urllib.parse.SplitResult) -> str:
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Prompt:
    """A prepared request body's prompt part and the route it goes to."""

    route: str  # "/completions" or "/chat/completions"
    body: dict[str, Any]
    ids: bool  # token ids, which a server may refuse


# How to ask for exactly N new tokens, in the order tried; see the module's docstring.
EXACT_N_WAYS: tuple[tuple[str, Callable[[int], dict[str, Any]]], ...] = (
    ("ignore_eos and min_tokens", lambda n: {"ignore_eos": True, "min_tokens": n}),
    ("generation_config min_new_tokens", lambda n: {"generation_config": json.dumps({"min_new_tokens": n})}),
    ("max_tokens alone (a request may end early, at end of sequence)", lambda n: {}),
)


class OpenAIEndpointBackend(GenerativeBackend):
    name = "openai"
    concurrent_requests = True  # httpx's Client is thread-safe: each request on its own thread, as a client sends it
    headers: Headers = ()  # set by the worker before load (LoadRequest.headers)
    read_timeout_s = READ_TIMEOUT_S

    def setup(self) -> None:
        try:
            import httpx
            import httpx_sse
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the openai backend needs httpx and httpx-sse ({first_line(exc)}): {INSTALL_HINT}"
            ) from exc
        self._httpx, self._httpx_sse = httpx, httpx_sse
        self._way = 0  # index into EXACT_N_WAYS: the first way the server has not refused
        self._client = None

    def load(self, path: str) -> None:
        endpoint = parse_endpoint(path)
        httpx = self._httpx
        self._endpoint = endpoint
        self._client = httpx.Client(
            base_url=endpoint.base,
            headers=dict(self.headers),
            timeout=httpx.Timeout(self.read_timeout_s, connect=min(CONNECT_TIMEOUT_S, self.read_timeout_s)),
        )
        served = self._served_models()
        self._model = self._chosen_model(served)
        self._hardware = self._server_hardware()

    def _server_hardware(self) -> str | None:
        """What the server says it runs on, where it says: Text Generation Inference's
        ``GET /info`` (beside /v1) names its device type and dtype. vLLM, SGLang, llama.cpp
        and transformers serve say nothing of it, so None there; never an error."""
        root = self._endpoint.base.removesuffix("/v1")
        try:
            response = self._client.get(root + "/info", timeout=INFO_TIMEOUT_S)
            facts = response.json() if response.status_code == 200 else None
        except (self._httpx.HTTPError, ValueError):
            return None
        if not isinstance(facts, dict) or not isinstance(facts.get("model_device_type"), str):
            return None
        dtype = facts.get("model_dtype")
        return facts["model_device_type"] + (f", {dtype}" if isinstance(dtype, str) else "")

    def _served_models(self) -> list[str]:
        try:
            response = self._client.get("/models")
        except self._httpx.HTTPError as exc:
            raise ModelLoadError(f"cannot reach model endpoint {self._endpoint.shown}: {self._transport_words(exc)} (GET /models)") from None
        if response.status_code >= 400:
            raise self._status_error(response, "GET /models", at_load=True)
        try:
            listed = response.json()["data"]
            return [str(entry["id"]) for entry in listed]
        except (ValueError, KeyError, TypeError):
            raise ModelLoadError(
                f"model endpoint {self._endpoint.shown} answered GET /models with no model list "
                f"(OpenAI's {{\"data\": [{{\"id\": ...}}]}}): is it an OpenAI-compatible API's base URL, such as .../v1?"
            ) from None

    def _chosen_model(self, served: list[str]) -> str:
        shown, wanted = self._endpoint.shown, self._endpoint.model
        if wanted is not None:
            # a server that lists none may load a model on its first request (transformers serve without one forced)
            if served and wanted not in served:
                raise UsageError(f"{shown} serves no model {wanted!r}; it serves: {', '.join(map(repr, served))}")
            return wanted
        if len(served) == 1:
            return served[0]
        if not served:
            raise UsageError(f"{shown} lists no model (GET /models); name the one to run: {shown}#NAME")
        raise UsageError(
            f"{shown} serves {len(served)} models ({', '.join(map(repr, served))}); name the one to run: {shown}#NAME, "
            f"e.g. {shown}#{served[0]}"
        )

    def prepare_prompt(self, prompt: str | Sequence[int], *, chat: bool = False) -> Prompt:
        if isinstance(prompt, str):
            if not prompt:
                raise UsageError("an empty prompt: a request needs at least one token")
            if chat:
                return Prompt("/chat/completions", {"messages": [{"role": "user", "content": prompt}]}, ids=False)
            return Prompt("/completions", {"prompt": prompt}, ids=False)
        ids = [int(token) for token in prompt]
        if not ids:
            raise UsageError("an empty prompt: a request needs at least one token")
        return Prompt("/completions", {"prompt": ids}, ids=True)

    def generate_timed(self, prompt: Prompt, max_new_tokens: int, clock: Callable[[], int]) -> Generation:
        while True:
            body = {
                "model": self._model,
                **prompt.body,
                "max_tokens": max_new_tokens,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
                **EXACT_N_WAYS[self._way][1](max_new_tokens),
            }
            try:
                return self._streamed(prompt, body, clock)
            except _Refused as refused:
                if not self._refuses_the_way(refused):
                    raise self._refusal_error(prompt, refused) from None
                self._way += 1

    @property
    def exact_tokens_by(self) -> str:
        """How requests ask for exactly N tokens: the first way the server has not refused."""
        return EXACT_N_WAYS[self._way][0]

    def _streamed(self, prompt: Prompt, body: dict[str, Any], clock: Callable[[], int]) -> Generation:
        httpx = self._httpx
        during = f"POST {prompt.route}"
        stamps: list[int] = []
        texts: list[str] = []
        completion_tokens = prompt_tokens = None
        try:
            started = clock()
            with self._httpx_sse.connect_sse(self._client, "POST", prompt.route, json=body) as source:
                response = source.response
                if response.status_code >= 400:
                    response.read()
                    raise _Refused(response)
                for event in source.iter_sse():
                    arrived = clock()
                    if event.data == "[DONE]":
                        break
                    chunk = self._chunk(event.data, during)
                    text = _new_text(chunk["choices"])
                    if text:
                        stamps.append(arrived)
                        texts.append(text)
                    usage = chunk.get("usage")
                    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                        completion_tokens = usage["completion_tokens"]
                        prompt_tokens = usage.get("prompt_tokens")
        except self._httpx_sse.SSEError:
            raise WorkerError(
                f"{self._endpoint.shown} answered {during} with {response.headers.get('content-type', 'no content type')!r}, "
                f"not an event stream (text/event-stream)"
            ) from None
        except httpx.HTTPError as exc:
            words = self._transport_words(exc, streamed=len(stamps))
            raise WorkerError(f"model endpoint {self._endpoint.shown}: {words} ({during})") from None
        ended = clock()
        if not stamps and completion_tokens:
            # transformers serve holds back a token that ends inside a character until it is
            # whole: an answer of lone bytes streams nothing, and no token's time can be read
            raise WorkerError(
                f"{self._endpoint.shown} streamed no text ({during}) though it reports {completion_tokens} new tokens: "
                f"its answer never completed a character, so no token's arrival can be timed; leave that prompt out"
            )
        counted_by = "chunks" if completion_tokens is None else "usage"
        return Generation(
            started, tuple(stamps), ended, (),
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else 0,
            output_text="".join(texts), counted_by=counted_by,
            new_tokens=len(stamps) if completion_tokens is None else completion_tokens,
        )  # fmt: skip

    def _chunk(self, data: str, during: str) -> dict[str, Any]:
        """One event's JSON; a one-line WorkerError for one that is none, or holds no choices."""
        shown = self._endpoint.shown
        try:
            chunk = json.loads(data)
        except ValueError:
            raise WorkerError(f"{shown} streamed an event that is not JSON ({during}): {self._quoted(data)}") from None
        if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
            raise WorkerError(f"{shown} reported an error in the middle of its answer ({during}): {self._quoted(_message_of(chunk))}")
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            raise WorkerError(f"{shown} streamed an event without choices, so not a completion chunk ({during}): {self._quoted(data)}")
        return chunk

    def _refuses_the_way(self, refused: _Refused) -> bool:
        """A 400/422 that names the fields of the way tried: the server does not take them."""
        fields = EXACT_N_WAYS[self._way][1](1)
        return refused.status in (400, 422) and bool(fields) and any(name in refused.text for name in fields)

    def _refusal_error(self, prompt: Prompt, refused: _Refused) -> Exception:
        if prompt.ids and 400 <= refused.status < 500 and refused.status not in (408, 429):
            return UsageError(
                f"{self._endpoint.shown} refused token ids as a prompt (HTTP {refused.status}: "
                f"{self._quoted(refused.message)}); use a text column for the prompts"
            )
        return self._status_error(refused.response, f"POST {prompt.route}", at_load=False, message=refused.message)

    def _status_error(self, response: Any, during: str, *, at_load: bool, message: str | None = None) -> Exception:
        """An HTTP error status as one line: 4xx is what was asked (the URL, the model's name,
        the headers, the prompts: a UsageError) but for a timeout or a rate limit; 5xx is the
        server's failure."""
        message = _server_message(response) if message is None else message
        words = f"{self._endpoint.shown} answered HTTP {response.status_code} to {during}: {self._quoted(message)}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            return UsageError(words)
        return ModelLoadError(words) if at_load else WorkerError(words)

    def _transport_words(self, exc: Exception, streamed: int | None = None) -> str:
        """A transport failure in words, never the request (its headers)."""
        httpx = self._httpx
        if isinstance(exc, httpx.ConnectError):
            return "connection refused" if "refused" in str(exc).lower() else f"cannot connect: {first_line(exc)}"
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {min(CONNECT_TIMEOUT_S, self.read_timeout_s):g} s"
        if isinstance(exc, httpx.ReadTimeout):
            return f"the server sent nothing for {self.read_timeout_s:g} s, so the request was given up"
        if streamed is not None and isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return f"the connection was closed in the middle of the answer, after {streamed} chunks with text"
        return f"{type(exc).__name__}: {self._quoted(first_line(exc))}"

    def _quoted(self, text: str) -> str:
        """A server's or the transport's words, one line, short, with no header value in them."""
        lines = text.strip().splitlines()
        line = lines[0] if lines else "(no message)"
        if len(line) > SERVER_MESSAGE_CHARS:
            line = line[:SERVER_MESSAGE_CHARS] + "..."
        return redact(line, self.headers)

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
            self._client = None

    def info(self) -> BackendInfo:
        details = {
            "endpoint": self._endpoint.shown,
            "served_model": self._model,
            "client": f"httpx {self._httpx.__version__}",
            "exact_tokens": "asked for by " + ", else ".join(name for name, _ in EXACT_N_WAYS),
        }
        if self._hardware is not None:
            details["server_hardware"] = self._hardware
        return self._info("httpx", self._httpx.__version__, details)  # the client: the server says nothing of its own


class _Refused(Exception):
    """An HTTP error status to a request (its body read)."""

    def __init__(self, response: Any) -> None:
        super().__init__(response.status_code)
        self.response = response
        self.status = response.status_code
        self.text = response.text
        self.message = _server_message(response)


def _new_text(choices: list[Any]) -> str:
    """The text a chunk's choices add: ``text`` (completions) or ``delta.content`` (chat)."""
    found = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")
        if text is None and isinstance(choice.get("delta"), dict):
            text = choice["delta"].get("content")
        if isinstance(text, str):
            found.append(text)
    return "".join(found)


def _server_message(response: Any) -> str:
    """What a server says in an error response: FastAPI's ``detail``, OpenAI's
    ``error.message``, a ``message``, else the body's text."""
    try:
        return _message_of(response.json())
    except ValueError:
        return response.text


def _message_of(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("detail", "error", "message"):
            if key in value:
                return _message_of(value[key])
    if isinstance(value, str):
        return value
    return json.dumps(value)
