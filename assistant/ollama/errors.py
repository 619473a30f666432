"""Errors of the Ollama layer: each is a `ModelError` with a ``kind`` and a sentence for the user.

The raw client surfaces a refused connection as a bare ``ConnectionError`` for plain calls but as
``httpx.ConnectError`` for streams, a timeout as ``httpx.ReadTimeout``, a cut stream as
``httpx.RemoteProtocolError``, and a missing model as ``ResponseError(404)``; `translate` turns each into one
of the classes below, so callers (agent, UI, launcher, MCP) branch on ``kind``, never on message text.
Subclasses also inherit from the matching client/httpx exception, so code written against the raw client
keeps classifying them the same way.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import ollama
from pydantic import ValidationError

from assistant.chat_model import STREAM_DROPPED_TEXT, ModelError, ModelErrorKind, timeout_message
from assistant.ollama.health import unreachable_health

__all__ = [
    "ChatCancelled",
    "MalformedResponse",
    "ModelMissing",
    "ModelNotSuitable",
    "OllamaServerError",
    "OllamaTimeout",
    "OllamaUnavailable",
    "StreamInterrupted",
    "Translate",
    "chat_error",
    "translate",
]


class OllamaUnavailable(ModelError):
    """Ollama could not do what was asked. ``str(err)`` says what happened and what to do about it."""


class OllamaTimeout(OllamaUnavailable, httpx.TimeoutException):
    """No answer within the client timeout (a model still loading, or a wrong host that swallows packets)."""

    kind = ModelErrorKind.TIMEOUT

    def __init__(self, message: str) -> None:
        OllamaUnavailable.__init__(self, message)
        self._request = None


class StreamInterrupted(OllamaUnavailable, httpx.RemoteProtocolError):
    """The connection died mid-answer (runner crash, out of memory, Ollama quit); what arrived is valid."""

    kind = ModelErrorKind.STREAM_DROPPED

    def __init__(self, message: str) -> None:
        OllamaUnavailable.__init__(self, message)
        self._request = None


class OllamaServerError(OllamaUnavailable, ollama.ResponseError):
    """Ollama answered an error status with ``{"error": ...}``; ``.error``, ``.status_code`` as usual.

    ``kind`` is BUSY for a full queue (503), NO_TOOLS for a model that cannot call tools, else SERVER.
    """

    kind = ModelErrorKind.SERVER

    def __init__(
        self, message: str, error: str, status_code: int, kind: ModelErrorKind | None = None
    ) -> None:
        OllamaUnavailable.__init__(self, message, kind)
        self.error = error
        self.status_code = status_code


class ModelMissing(OllamaServerError):
    """The model is not installed (or not in the library, for a pull). The message names ``ollama pull X``."""

    kind = ModelErrorKind.MODEL_MISSING

    def __init__(self, model: str, message: str, error: str = "", status_code: int = 404) -> None:
        super().__init__(message, error or message, status_code)
        self.model = model


class ModelNotSuitable(OllamaUnavailable):
    """An installed model that cannot play the role asked of it (a chat model without tools...)."""

    kind = ModelErrorKind.NOT_SUITABLE


class MalformedResponse(OllamaUnavailable):
    """Ollama (or something pretending to be it) sent a message the client cannot parse."""

    kind = ModelErrorKind.MALFORMED


class ChatCancelled(OllamaUnavailable):
    """The answer was stopped on purpose through its :class:`ChatCancel` (the user pressed Stop)."""

    kind = ModelErrorKind.CANCELLED


def translate(
    exc: BaseException,
    action: str,
    *,
    host: str,
    timeout_s: float,
    model: str | None = None,
    pulling: bool = False,
) -> OllamaUnavailable:
    """The OllamaUnavailable a raw client/httpx exception means, worded for ``action`` ("list the models")."""
    if isinstance(exc, OllamaUnavailable):
        return exc
    if isinstance(exc, ollama.ResponseError):
        error = str(exc.error)
        status = exc.status_code
        if model and (status == 404 or (pulling and "file does not exist" in error)):
            if pulling:
                message = (
                    f"Ollama could not find '{model}' to download ({error}). Check the name at "
                    "https://ollama.com/library."
                )
            else:
                message = f"Model '{model}' is not installed in Ollama: run `ollama pull {model}`."
            return ModelMissing(model, message, error, status if status > 0 else 404)
        code = f"HTTP {status}" if status > 0 else "error"
        what = f" with {model}" if model else ""
        return OllamaServerError(
            f"Ollama could not {action}{what} ({code}): {error}", error, status, _server_error_kind(exc)
        )
    if isinstance(exc, httpx.TimeoutException):
        return OllamaTimeout(
            f"Ollama at {host} did not answer within {timeout_s:g} s (timed out) while trying to "
            f"{action}. A large model may still be loading; try again or pick a smaller model."
        )
    if isinstance(exc, ConnectionError | httpx.ConnectError):
        health = unreachable_health(exc, host)
        return OllamaUnavailable(f"{health.problem}: {(health.advice or '').rstrip('.')}.")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return StreamInterrupted(
            f"The connection to Ollama at {host} dropped while trying to {action} ({exc}). The model "
            "runner may have crashed or run out of memory; try again."
        )
    if isinstance(exc, ValidationError):
        return MalformedResponse(
            f"Ollama sent a reply this client could not read while trying to {action} "
            f"({exc.error_count()} problem(s), first: {_first_validation_error(exc)})."
        )
    if isinstance(exc, ollama.RequestError):
        return OllamaUnavailable(f"Could not ask Ollama to {action}: {exc.error}.")
    return OllamaUnavailable(f"Could not talk to Ollama at {host} to {action} ({type(exc).__name__}: {exc}).")


def _server_error_kind(exc: ollama.ResponseError) -> ModelErrorKind:
    """What an error status means. Ollama says "does not support tools" (HTTP 400) for a model whose
    template has no tool calling; 503 "server busy" when its queue (OLLAMA_MAX_QUEUE) is full."""
    text = str(exc.error).lower()
    if "does not support tools" in text:
        return ModelErrorKind.NO_TOOLS
    if exc.status_code == 503 or "server busy" in text:
        return ModelErrorKind.BUSY
    return ModelErrorKind.SERVER


def chat_error(exc: OllamaUnavailable, model: str, timeout_s: float) -> OllamaUnavailable:
    """The same error, worded for a chat answer (what happened to the answer, and what to do)."""
    kind = exc.kind
    text = exc.error if isinstance(exc, OllamaServerError) else str(exc)
    status = exc.status_code if isinstance(exc, OllamaServerError) else 0
    if kind is ModelErrorKind.STREAM_DROPPED:
        message = STREAM_DROPPED_TEXT
    elif kind is ModelErrorKind.TIMEOUT:
        message = timeout_message(model, timeout_s)
    elif kind is ModelErrorKind.MODEL_MISSING or (
        kind is ModelErrorKind.SERVER and "not found" in text.lower()
    ):
        kind = ModelErrorKind.MODEL_MISSING
        message = (
            f"Model {model!r} is not installed in Ollama. Install it with `ollama pull {model}` "
            "or choose an installed model."
        )
    elif kind is ModelErrorKind.BUSY:
        message = (
            f"Ollama is busy: it has more requests queued than it accepts ({text}). Wait a moment and "
            "ask again; if it keeps happening, other apps are using Ollama heavily (OLLAMA_MAX_QUEUE, "
            "OLLAMA_NUM_PARALLEL)."
        )
    elif kind is ModelErrorKind.SERVER and status < 0:
        # An {"error": ...} line inside a 200 stream: the client has no HTTP status for it (-1).
        message = (
            f"Ollama stopped in the middle of the answer with this error: {text}. What arrived so far "
            "is kept; ask again, and if it repeats try a smaller model or a smaller context (num_ctx)."
        )
    elif kind is ModelErrorKind.SERVER:
        message = f"Ollama returned an error ({status}): {text}. Ask again or check the Ollama log."
    else:
        return exc
    return OllamaUnavailable(message, kind)


class Translate:
    """Context manager: raise the OllamaUnavailable that a client/httpx exception means."""

    def __init__(
        self, action: str, *, host: str, timeout_s: float, model: str | None = None, pulling: bool = False
    ) -> None:
        self.action, self.host, self.timeout_s = action, host, timeout_s
        self.model, self.pulling = model, pulling

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, OllamaUnavailable):
            return False
        if isinstance(
            exc,
            ollama.ResponseError | ollama.RequestError | ConnectionError | httpx.HTTPError | ValidationError,
        ):
            raise translate(
                exc,
                self.action,
                host=self.host,
                timeout_s=self.timeout_s,
                model=self.model,
                pulling=self.pulling,
            ) from exc
        return False


def _first_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}"
