"""The knowledge base through the real `ollama` client and the protocol-level stand-in (no mocks)."""

from __future__ import annotations

from pathlib import Path

import ollama
import pytest

from knowledge import EmbeddingUnavailable, KnowledgeBase, OllamaEmbedder
from tests.harness import HANG_S, standin_embedder
from tests.ollama_standin import OllamaStandIn
from tests.ollama_standin.models import Fault


def test_index_built_in_batches_with_prefixes_then_reused(standin: OllamaStandIn, tmp_path: Path) -> None:
    with KnowledgeBase(tmp_path, standin_embedder(standin)) as kb:
        report = kb.sync()
        assert report.mode == "hybrid" and report.embedded == report.total_chunks
        sizes = [len(r.inputs) for r in standin.embed_requests()]
        assert sizes and max(sizes) == 8 and sum(sizes) == report.total_chunks, "batched by batch_size"
        assert all(text.startswith("search_document: ") for text in standin.embedded_texts())
        assert {r.model for r in standin.embed_requests()} == {"nomic-embed-text"}

        standin.clear_requests()
        out = kb.search("Which Mac should I buy to run 70B models?", 5)
        assert out.mode == "hybrid" and "decision-70b" in [p.id for p in out.passages]
        assert standin.embedded_texts() == ["search_query: Which Mac should I buy to run 70B models?"]

    standin.clear_requests()
    with KnowledgeBase(tmp_path, standin_embedder(standin)) as kb:
        assert kb.sync().embedded == 0
    assert standin.embed_requests() == [], "an unchanged corpus makes no embedding calls on restart"


def test_ollama_down_then_back(standin: OllamaStandIn, tmp_path: Path) -> None:
    with KnowledgeBase(tmp_path, standin_embedder(standin)) as kb:
        with standin.down():
            report = kb.sync()
            out = kb.search("Does the Neural Engine matter?", 3)
        assert report.mode == "lexical" and "not reachable" in (report.problem or "")
        assert out.mode == "lexical" and out.passages[0].id == "neural-engine"
        assert any("Lexical" in note for note in out.assumptions)
        report = kb.sync()
        assert report.mode == "hybrid" and report.embedded == report.total_chunks
        assert kb.search("Does the Neural Engine matter?", 3).mode == "hybrid"


def test_missing_model_and_server_errors_are_clear(standin: OllamaStandIn, tmp_path: Path) -> None:
    standin.remove_model("nomic-embed-text")
    embedder = standin_embedder(standin)
    with pytest.raises(EmbeddingUnavailable, match="ollama pull nomic-embed-text"):
        embedder.embed_query("hello")
    with KnowledgeBase(tmp_path, embedder) as kb:
        report = kb.sync()
        assert report.mode == "lexical" and "ollama pull nomic-embed-text" in (report.problem or "")
        assert kb.search("external SSD", 1).passages[0].id == "external-storage"


def test_server_error_during_sync_degrades_then_recovers(standin: OllamaStandIn, tmp_path: Path) -> None:
    standin.inject("/api/embed", Fault.http(500), times=1)
    with KnowledgeBase(tmp_path, standin_embedder(standin)) as kb:
        first = kb.sync()
        assert first.mode == "lexical" and "HTTP 500" in (first.problem or "")
        second = kb.sync()
        assert second.mode == "hybrid" and second.embedded == second.total_chunks


def test_connection_refused_is_embedding_unavailable(standin: OllamaStandIn) -> None:
    embedder = standin_embedder(standin)
    standin.refuse_connections()
    with pytest.raises(EmbeddingUnavailable, match="not reachable"):
        embedder.embed_documents(["a", "b"])
    standin.accept_connections()
    assert len(embedder.embed_documents(["a", "b"])[0]) == 768


@pytest.mark.live
def test_live_nomic_embed_text_retrieval(live_ollama: str, tmp_path: Path) -> None:
    """On a Mac with Ollama and nomic-embed-text: the real model meets the same recall target."""
    from knowledge.evaluation import evaluate, load_questions

    client = ollama.Client(host=live_ollama, timeout=120.0)
    if not any(m.model and m.model.startswith("nomic-embed-text") for m in client.list().models):
        pytest.skip("nomic-embed-text is not pulled (ollama pull nomic-embed-text)")
    with KnowledgeBase(tmp_path, OllamaEmbedder(client, "nomic-embed-text")) as kb:
        assert kb.sync().mode == "hybrid"
        assert evaluate(kb, load_questions(), "hybrid").recall_at_5 >= 0.95


def test_search_falls_back_fast_when_ollama_stops_answering(standin: OllamaStandIn, tmp_path: Path) -> None:
    """An Ollama that accepts connections but hangs must not stall search for the chat timeout (120 s)."""
    import time

    from assistant.ollama import OllamaLayer

    layer = OllamaLayer(standin.url, timeout_s=120.0)
    # Build the index without a tight timeout (embedding the corpus on a loaded machine can take more than
    # 1 s per batch); then reopen it with the 1 s embedder whose timeout this test is about.
    with KnowledgeBase(tmp_path, layer.embedder("nomic-embed-text", timeout_s=HANG_S)) as kb:
        assert kb.sync().mode == "hybrid"
    with KnowledgeBase(tmp_path, layer.embedder("nomic-embed-text", timeout_s=1.0)) as kb:
        standin.clear_requests()
        assert kb.sync().mode == "hybrid"
        assert not standin.embed_requests(), "the reopened index is up to date: nothing to embed"
        standin.inject("/api/embed", Fault.slow(120.0), times=1)
        started = time.perf_counter()
        out = kb.search("Which Mac should I buy to run 70B models?", 5)
        elapsed = time.perf_counter() - started
    assert out.mode == "lexical" and out.passages, "the hung embedder sends search to its lexical fallback"
    # The embedder's 1 s timeout ends the wait, not the 120 s hang (or the 120 s chat timeout).
    assert elapsed < 60, f"search waited {elapsed:.1f} s for a hung Ollama"


def test_every_search_path_falls_back_to_keywords_within_the_setting(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    """The Search tab (KnowledgeBase.search), the search_knowledge tool and the MCP server stop waiting for a
    stalled query embedding after Settings.search_embed_timeout_s, not the 30 s embedding timeout."""
    import time

    from assistant.config import Settings
    from assistant.mcp.runtime import build_runtime

    settings = Settings(ollama_host=standin.url, data_dir=tmp_path, search_embed_timeout_s=1.0)
    runtime = build_runtime(settings, background_sync=False)  # what the MCP server serves
    try:
        kb = runtime.knowledge
        assert kb.sync().mode == "hybrid"
        tool = runtime.registry.get("search_knowledge")
        question = "Which Mac should I buy to run 70B models?"
        paths = {"search tab": lambda: kb.search(question, 5), "tool": lambda: tool.run({"query": question})}
        for name, search in paths.items():
            standin.inject("/api/embed", Fault.slow(120.0), times=1)
            started = time.monotonic()
            out = search()
            elapsed = time.monotonic() - started
            assert out.mode == "lexical" and out.passages, name  # type: ignore[attr-defined]
            notes = " ".join(out.assumptions)  # type: ignore[attr-defined]
            assert "did not embed the query within 1 s" in notes, (name, notes)
            # Bounded by the 1 s setting, far from the 30 s an embedding batch may take (generous bound).
            assert elapsed < 20, f"{name}: search waited {elapsed:.1f} s for a stalled embedding"
        assert kb.search(question, 5).mode == "hybrid", "the next search uses vectors again"
    finally:
        runtime.close()


def test_cli_search_falls_back_within_the_same_setting(
    standin: OllamaStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`knowledge search` reads the app's setting from the environment (ADVISOR_SEARCH_EMBED_TIMEOUT_S)."""
    import time

    from knowledge.cli import CliSettings, open_knowledge_base

    monkeypatch.setenv("ADVISOR_SEARCH_EMBED_TIMEOUT_S", "1")
    settings = CliSettings.from_env(data_dir=tmp_path, ollama_host=standin.url)
    with open_knowledge_base(settings, progress=False) as kb:
        assert kb.sync().mode == "hybrid"
        standin.inject("/api/embed", Fault.slow(120.0), times=1)
        started = time.monotonic()
        out = kb.search("Which Mac should I buy to run 70B models?", 5)
        elapsed = time.monotonic() - started
    assert out.mode == "lexical" and "did not embed the query within 1 s" in " ".join(out.assumptions)
    assert elapsed < 20, f"search waited {elapsed:.1f} s (the embedding batch timeout here is 120 s)"
