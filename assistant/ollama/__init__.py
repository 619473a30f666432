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
from assistant.ollama.chat import DEFAULT_NUM_CTX, DEFAULT_SPEED_PROMPT, SpeedMeasurement
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
from assistant.ollama.facts import (
    GGML_BITS,
    InstalledModel,
    LoadedModel,
    ModelFacts,
    canonical_model_name,
    tensor_layout,
)
from assistant.ollama.health import MIN_VERSION, Health, HealthKind, ollama_installed
from assistant.ollama.layer import EMBED_TIMEOUT_S, SEARCH_EMBED_TIMEOUT_S, OllamaLayer
from assistant.ollama.pulls import EnsureReport, ProgressCallback, PullProgress

__all__ = [
    "DEFAULT_NUM_CTX",
    "DEFAULT_SPEED_PROMPT",
    "EMBED_TIMEOUT_S",
    "GGML_BITS",
    "MIN_VERSION",
    "SEARCH_EMBED_TIMEOUT_S",
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
    "ollama_installed",
    "tensor_layout",
]
