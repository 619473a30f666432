"""Chat over the ollama client: the raw stream (busy retries, Stop), typed `Chunk`s, a speed measurement."""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import ollama
from pydantic import BaseModel, Field

from assistant.chat_model import ChatCancel, Chunk, ToolCall
from assistant.context_window import FALLBACK_NUM_CTX
from assistant.ollama.errors import ChatCancelled, MalformedResponse, StreamInterrupted
from assistant.ollama.transport import cancellable

__all__ = [
    "BUSY_RETRY_DELAYS_S",
    "DEFAULT_NUM_CTX",
    "DEFAULT_SPEED_PROMPT",
    "SpeedMeasurement",
    "measure_speed",
    "raw_chat_stream",
    "to_chunk",
]

BUSY_RETRY_DELAYS_S = (0.5, 1.0, 2.0)
"""Waits before retrying a chat that Ollama refused with 503 "server busy" (its request queue,
OLLAMA_MAX_QUEUE, was full). Safe because nothing was generated yet; after the last one the error reaches
the user."""

DEFAULT_NUM_CTX = FALLBACK_NUM_CTX
"""The context window of a request that names none: the window num_ctx "auto" falls back to where there is
no Mac to size it against. Every request names one, so that Ollama never reloads a model just because one
request left it out."""

DEFAULT_SPEED_PROMPT = (
    "Explain in about one hundred words why memory bandwidth limits how fast a large language model "
    "generates tokens on a laptop."
)


def raw_chat_stream(
    client: ollama.Client,
    model: str,
    request: Mapping[str, Any],
    cancel: ChatCancel | None,
    busy_delays: Sequence[float],
) -> Generator[ollama.ChatResponse, None, None]:
    """The client's chat chunks; retries while Ollama is busy and nothing was generated; raw errors pass.

    A stream that ends without its ``done`` chunk raises StreamInterrupted; a cancelled one ChatCancelled.
    """
    delays = list(busy_delays)
    done = False
    while True:
        if cancel is not None and cancel.cancelled:
            raise ChatCancelled(f"The answer from {model} was stopped.")
        stream = client.chat(model=model, stream=True, **request)
        received = False
        try:
            for chunk in stream if cancel is None else cancellable(stream, cancel):
                received = True
                done = done or bool(chunk.done)
                yield chunk
        except ollama.ResponseError as exc:
            if received or exc.status_code != 503 or not delays:
                raise
            # "server busy": Ollama's queue is full and nothing was generated; wait and ask again.
            _pause(delays.pop(0), cancel)
            continue
        except Exception as exc:
            if cancel is not None and cancel.cancelled:
                raise ChatCancelled(f"The answer from {model} was stopped.") from exc
            raise
        finally:
            if cancel is not None:
                cancel.release()  # before the connection can go back to the pool
            if isinstance(stream, Generator):  # typed Iterator; a generator underneath
                stream.close()  # release the connection now if the consumer stopped early
        break
    if not done and cancel is not None and cancel.cancelled:
        raise ChatCancelled(f"The answer from {model} was stopped.")
    if not done:
        raise StreamInterrupted(
            f"The answer from {model} stopped before it was complete (Ollama closed the stream)."
        )


def _pause(seconds: float, cancel: ChatCancel | None) -> None:
    if cancel is not None:
        cancel.wait(seconds)
    else:
        time.sleep(seconds)


def to_chunk(raw: ollama.ChatResponse) -> Chunk:
    """A client chat chunk as a typed Chunk (arguments the transport could not decode stay a string)."""
    message = raw.message
    calls = tuple(
        ToolCall(name=call.function.name, arguments=_undecoded(call.function.arguments))
        for call in message.tool_calls or ()
    )
    if not raw.done:
        return Chunk(text=message.content or "", thinking=message.thinking or "", tool_calls=calls)
    return Chunk(
        text=message.content or "",
        thinking=message.thinking or "",
        tool_calls=calls,
        done=True,
        prompt_eval_count=raw.prompt_eval_count or 0,
        eval_count=raw.eval_count or 0,
        eval_duration_ns=raw.eval_duration or 0,
    )


def _undecoded(arguments: Mapping[str, Any]) -> Mapping[str, Any] | str:
    """The transport's marker ``{"_raw": text}`` for undecodable arguments becomes the text again, so that
    Tool.run's error ("could not parse it") tells the model what to fix."""
    if set(arguments) == {"_raw"} and isinstance(arguments["_raw"], str):
        return arguments["_raw"]
    return dict(arguments)


class SpeedMeasurement(BaseModel):
    """A real generation's timings as Ollama reports them (durations in seconds)."""

    model: str
    tokens_per_second: float = Field(description="Decode speed: eval_count / eval_duration.")
    prompt_tokens_per_second: float | None = Field(default=None, description="Prefill speed.")
    eval_count: int
    eval_duration_s: float
    prompt_eval_count: int | None = None
    prompt_eval_duration_s: float | None = None
    load_s: float | None = Field(default=None, description="Model load time (0 when it was already loaded).")
    total_s: float | None = None
    done_reason: str | None = None

    @property
    def load_seconds(self) -> float | None:
        return self.load_s


def measure_speed(
    client: ollama.Client, model: str, prompt: str | None, num_predict: int, num_ctx: int
) -> SpeedMeasurement:
    """One short, non-streamed generation; the speeds from Ollama's own counters."""
    reply = client.chat(
        model=model,
        messages=[{"role": "user", "content": prompt or DEFAULT_SPEED_PROMPT}],
        stream=False,
        options={"num_predict": num_predict, "temperature": 0, "num_ctx": num_ctx},
    )
    if not reply.eval_count or not reply.eval_duration:
        raise MalformedResponse(
            f"Ollama reported no generation timings for {model} (eval_count/eval_duration missing)."
        )
    prompt_tps = None
    if reply.prompt_eval_count and reply.prompt_eval_duration:
        prompt_tps = reply.prompt_eval_count / (reply.prompt_eval_duration / 1e9)
    return SpeedMeasurement(
        model=model,
        tokens_per_second=reply.eval_count / (reply.eval_duration / 1e9),
        prompt_tokens_per_second=prompt_tps,
        eval_count=reply.eval_count,
        eval_duration_s=reply.eval_duration / 1e9,
        prompt_eval_count=reply.prompt_eval_count,
        prompt_eval_duration_s=_seconds(reply.prompt_eval_duration),
        load_s=_seconds(reply.load_duration),
        total_s=_seconds(reply.total_duration),
        done_reason=reply.done_reason,
    )


def _seconds(ns: int | None) -> float | None:
    return ns / 1e9 if ns is not None else None
