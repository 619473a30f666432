"""The same layer functions against a real Ollama (``uv run pytest -m live``); skipped when none answers.

Nothing here pulls a model: tests that need one use what is installed (ADVISOR_CHAT_MODEL or
ADVISOR_EMBED_MODEL if set and installed) and skip with the reason otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from assistant.ollama import ModelMissing, OllamaLayer, canonical_model_name
from tools import ModelArchitecture

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def layer(live_ollama: str) -> Iterator[OllamaLayer]:
    with OllamaLayer(live_ollama, timeout_s=300.0) as lay:
        yield lay


@pytest.fixture(scope="module")
def chat_model(layer: OllamaLayer) -> str:
    wanted = os.environ.get("ADVISOR_CHAT_MODEL")
    able = layer.tool_capable_models()
    if wanted and canonical_model_name(wanted) in {canonical_model_name(m) for m in able}:
        return wanted
    if not able:
        pytest.skip("no installed model has the 'tools' capability (e.g. `ollama pull qwen2.5:7b`)")
    return able[0]


@pytest.fixture(scope="module")
def embed_model(layer: OllamaLayer) -> str:
    wanted = os.environ.get("ADVISOR_EMBED_MODEL", "nomic-embed-text")
    if canonical_model_name(wanted) not in {m.name for m in layer.installed_models()}:
        pytest.skip(f"{wanted} is not installed (`ollama pull {wanted}`)")
    return wanted


def test_health(layer: OllamaLayer) -> None:
    health = layer.health()
    assert health.ok, health.message
    assert health.version


def test_installed_and_facts(layer: OllamaLayer, chat_model: str) -> None:
    names = [m.name for m in layer.installed_models()]
    assert canonical_model_name(chat_model) in {canonical_model_name(n) for n in names}
    facts = layer.model_facts(chat_model)
    assert facts.supports_tools and facts.n_layers and facts.context_length
    ModelArchitecture.model_validate(facts.architecture())


def test_missing_model_is_named(layer: OllamaLayer) -> None:
    with pytest.raises(ModelMissing, match="ollama pull"):
        layer.model_facts("surely-not-installed-model:0b")


def test_ensure_models_without_pulling(layer: OllamaLayer, chat_model: str, embed_model: str) -> None:
    report = layer.ensure_models(chat_model, embed_model)
    assert report.pulled == []


def test_embeddings(layer: OllamaLayer, embed_model: str) -> None:
    embedder = layer.embedder(embed_model)
    docs = embedder.embed_documents(["The M3 Max has 400 GB/s of memory bandwidth.", "Bananas are yellow."])
    query = embedder.embed_query("memory bandwidth of the M3 Max")
    assert len(docs) == 2 and len(query) == len(docs[0]) > 0

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / ((sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5))

    assert cosine(query, docs[0]) > cosine(query, docs[1])


def test_chat_stream_with_a_tool(layer: OllamaLayer, chat_model: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "estimate_speed",
            "description": "Estimate the decode speed (tokens/s) of a model on an Apple Silicon chip.",
            "parameters": {
                "type": "object",
                "properties": {
                    "chip": {"type": "string", "description": 'e.g. "M3 Max"'},
                    "model": {"type": "string", "description": 'Ollama tag, e.g. "qwen2.5:7b"'},
                },
                "required": ["chip", "model"],
            },
        },
    }
    messages = [{"role": "user", "content": "Use the tool: how fast is qwen2.5:7b on an M3 Max?"}]
    chunks = list(layer.chat_stream(chat_model, messages, [tool], {"num_ctx": 4096, "temperature": 0}))
    assert chunks[-1].done and chunks[-1].eval_count
    calls = [call for c in chunks for call in (c.message.tool_calls or [])]
    text = "".join(c.message.content or "" for c in chunks)
    assert calls or text  # small models may answer directly; either way the stream completed


def test_measure_speed_and_loaded(layer: OllamaLayer, chat_model: str) -> None:
    measured = layer.measure_speed(chat_model, num_predict=32)
    assert measured.tokens_per_second > 0 and measured.eval_count > 0
    loaded = {canonical_model_name(m.name): m for m in layer.loaded_models()}
    model = loaded.get(canonical_model_name(chat_model))
    assert model is not None and model.size_vram_bytes is not None
