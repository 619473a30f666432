"""Everything the assistant asks of Ollama, by responsibility.

- `layer`: `OllamaLayer`, the one door (implements the agent's `ChatModel`);
- `errors`: every failure as an `OllamaUnavailable` with a ``kind`` and a sentence;
- `health`: is a usable Ollama answering (`Health`);
- `facts`: installed / loaded models and /api/show facts (`ModelFacts`);
- `chat`: the chat stream, typed chunks, speed measurement;
- `transport`: tool-call argument repair and the socket abort behind Stop;
- `pulls`: pulling models and refusing unsuitable ones (the progress bar is the CLI's).
"""

from __future__ import annotations

from assistant.chat_model import ChatCancel
from assistant.ollama.chat import DEFAULT_NUM_CTX, SpeedMeasurement
from assistant.ollama.errors import (
    ChatCancelled,
    MalformedResponse,
    ModelMissing,
    ModelNotSuitable,
    OllamaServerError,
    OllamaTimeout,
    OllamaUnavailable,
    StreamInterrupted,
    chat_error,
)
from assistant.ollama.facts import InstalledModel, LoadedModel, ModelFacts, canonical_model_name
from assistant.ollama.health import MIN_VERSION, Health, HealthKind
from assistant.ollama.layer import OllamaLayer
from assistant.ollama.pulls import EnsureReport, ProgressCallback, PullProgress

__all__ = [
    "DEFAULT_NUM_CTX",
    "MIN_VERSION",
    "ChatCancel",
    "ChatCancelled",
    "EnsureReport",
    "Health",
    "HealthKind",
    "InstalledModel",
    "LoadedModel",
    "MalformedResponse",
    "ModelFacts",
    "ModelMissing",
    "ModelNotSuitable",
    "OllamaLayer",
    "OllamaServerError",
    "OllamaTimeout",
    "OllamaUnavailable",
    "ProgressCallback",
    "PullProgress",
    "SpeedMeasurement",
    "StreamInterrupted",
    "canonical_model_name",
    "chat_error",
]
