"""Index lifecycle: incremental sync, model change, corrupted store, removal, lexical fallback.

Embeddings come from an in-process embedder on the stand-in's deterministic `embed_text` (the protocol-level
HTTP path is covered in test_knowledge_standin.py). It counts what it embeds, which is how "an unchanged
corpus does zero embedding calls" is asserted. "Ollama is down" is never faked in-process: those tests run
the real OllamaEmbedder against the stand-in with its listening socket closed (`standin.down()`).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from knowledge import KnowledgeBase
from knowledge.chunking import (
    SourceDocument,
    chunk_document,
    load_passages,
    split_front_matter,
)
from knowledge.search import DEFAULT_BATCH, PASSAGES_DIR, reciprocal_rank_fusion
from tests.harness import standin_embedder
from tests.ollama_standin import Fault, OllamaStandIn
from tests.ollama_standin.embedder import embed_text


class CountingEmbedder:
    """Embedder protocol on embed_text, recording every call."""

    def __init__(self, model_name: str = "standin-embed", dimension: int | None = None) -> None:
        self.model_name = model_name
        self.dimension = dimension
        self.document_calls = 0
        self.documents_embedded = 0
        self.queries: list[str] = []

    def _vec(self, text: str) -> list[float]:
        vector = embed_text(text)
        return vector[: self.dimension] if self.dimension else vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.document_calls += 1
        self.documents_embedded += len(texts)
        return [self._vec("search_document: " + t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self._vec("search_query: " + text)


@pytest.fixture
def passages(tmp_path: Path) -> Path:
    target = tmp_path / "passages"
    shutil.copytree(PASSAGES_DIR, target)
    return target


def n_passages() -> int:
    return len(list(PASSAGES_DIR.glob("*.md")))


# -- chunking ------------------------------------------------------------------------------------------------


def _doc(body: str, doc_id: str = "doc") -> SourceDocument:
    return SourceDocument(id=doc_id, title="T", section=None, source="S", body=body)


def test_chunker_keeps_tables_whole_and_respects_headings() -> None:
    table = "\n".join(["| a | b |", "|---|---|"] + [f"| row{i} | {'x' * 40} |" for i in range(12)])
    body = (
        f"# Intro\n\nFirst paragraph.\n\n## Numbers\n\n{table}\n\nAfter the table.\n\n# Other\n\nElsewhere."
    )
    chunks = chunk_document(_doc(body), max_chars=200)
    tables = [c for c in chunks if "| a | b |" in c.text]
    assert len(tables) == 1 and tables[0].text.count("| row") == 12, "a table must stay in one chunk"
    assert tables[0].section == "Intro > Numbers"
    assert {c.section for c in chunks} == {"Intro", "Intro > Numbers", "Other"}
    assert not any("Elsewhere" in c.text and "First" in c.text for c in chunks), (
        "chunks must not cross headings"
    )


def test_chunk_ids_are_stable_and_follow_content() -> None:
    body = "# A\n\nOne.\n\n# B\n\nTwo."
    first, second = chunk_document(_doc(body)), chunk_document(_doc(body))
    assert [c.id for c in first] == [c.id for c in second]
    changed = chunk_document(_doc(body.replace("Two.", "Three.")))
    assert first[0].id == changed[0].id and first[1].id != changed[1].id
    assert all(c.id.startswith("doc:") for c in first)
    assert [c.citation_id for c in first] == ["doc#1", "doc#2"]


def test_long_paragraph_is_split_and_code_fence_kept() -> None:
    sentence = "Memory bandwidth limits decoding speed. "
    code = "```\n" + "\n".join(f"ollama pull model{i}" for i in range(30)) + "\n```"
    chunks = chunk_document(_doc(sentence * 40 + "\n\n" + code), max_chars=300)
    assert all(len(c.text) <= 300 for c in chunks if "```" not in c.text)
    fences = [c for c in chunks if "```" in c.text]
    assert len(fences) == 1 and fences[0].text.count("ollama pull") == 30


def test_front_matter_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("---\nid: Bad Id!\ntitle: x\n---\nbody\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.md.*(id|section|source)"):
        load_passages(tmp_path)
    assert split_front_matter("no front matter") == ({}, "no front matter")


def test_rrf_prefers_items_ranked_well_by_both() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [4, 2, 9]])
    assert fused[0][0] == 2 and {i for i, _ in fused} == {1, 2, 3, 4, 9}


# -- incremental index ---------------------------------------------------------------------------------------


def test_unchanged_corpus_does_zero_embedding_calls_on_restart(tmp_path: Path, passages: Path) -> None:
    embedder = CountingEmbedder()
    with KnowledgeBase(tmp_path / "data", embedder, passages_dir=passages) as kb:
        report = kb.sync()
    assert report.mode == "hybrid" and report.embedded == n_passages() and not report.rebuilt
    batches = math.ceil(n_passages() / DEFAULT_BATCH)
    assert embedder.document_calls == batches, (
        f"{n_passages()} chunks go in {batches} batch(es) of {DEFAULT_BATCH}"
    )

    again = CountingEmbedder()
    with KnowledgeBase(tmp_path / "data", again, passages_dir=passages) as kb:
        report = kb.sync()
        out = kb.search("memory bandwidth ceiling for a 70B model", 3)
    assert again.document_calls == 0 and again.documents_embedded == 0
    assert report.embedded == 0 and report.reused == n_passages() and report.removed == 0
    assert out.mode == "hybrid" and again.queries == ["memory bandwidth ceiling for a 70B model"]


def test_changed_passage_is_reembedded_and_deleted_one_removed(tmp_path: Path, passages: Path) -> None:
    data = tmp_path / "data"
    with KnowledgeBase(data, CountingEmbedder(), passages_dir=passages) as kb:
        kb.sync()

    target = next(passages.glob("*-neural-engine.md"))
    target.write_text(
        target.read_text(encoding="utf-8") + "\nA zebracorn sentence was added.\n", encoding="utf-8"
    )
    (next(passages.glob("*-networking-10gbe.md"))).unlink()
    embedder = CountingEmbedder()
    with KnowledgeBase(data, embedder, passages_dir=passages) as kb:
        report = kb.sync()
        assert report.embedded == 1 and embedder.documents_embedded == 1
        assert report.removed == 2, "the old version of the changed passage and the deleted passage"
        assert report.reused == n_passages() - 2
        hits = kb.search("zebracorn", 3)
        assert hits.passages[0].id == "neural-engine"
        ids = {p.id for p in kb.search("10GbE NAS Synology", 10).passages}
        assert "networking-10gbe" not in ids
        assert kb.passage("networking-10gbe") is None
        assert kb._store is not None and kb._store.count() == n_passages() - 1


def test_model_change_rebuilds_the_index(tmp_path: Path, passages: Path) -> None:
    data = tmp_path / "data"
    with KnowledgeBase(data, CountingEmbedder("model-a"), passages_dir=passages) as kb:
        kb.sync()
    other = CountingEmbedder("model-b")
    with KnowledgeBase(data, other, passages_dir=passages) as kb:
        report = kb.sync()
        assert kb.search("Draw Things ComfyUI", 3).mode == "hybrid"
    assert (
        report.rebuilt
        and "model-a" in (report.rebuild_reason or "")
        and "model-b" in (report.rebuild_reason or "")
    )
    assert report.embedded == n_passages() and other.documents_embedded == n_passages()
    with KnowledgeBase(data, CountingEmbedder("model-b"), passages_dir=passages) as kb:
        assert kb.sync().embedded == 0


def test_dimension_change_under_same_model_name_rebuilds(tmp_path: Path, passages: Path) -> None:
    data = tmp_path / "data"
    with KnowledgeBase(data, CountingEmbedder(), passages_dir=passages) as kb:
        kb.sync()
    target = next(passages.glob("*-bottom-line.md"))
    target.write_text(target.read_text(encoding="utf-8") + "\nExtra.\n", encoding="utf-8")
    with KnowledgeBase(data, CountingEmbedder(dimension=384), passages_dir=passages) as kb:
        report = kb.sync()
        assert report.rebuilt and "dimension" in (report.rebuild_reason or "")
        assert report.embedded == n_passages() and kb._store is not None and kb._store.dimension == 384
        assert kb.search("what to buy for $2000", 3).mode == "hybrid"


@pytest.mark.parametrize("damage", ["garbage", "truncate", "index_is_a_file"])
def test_corrupted_store_is_rebuilt_not_a_crash(tmp_path: Path, passages: Path, damage: str) -> None:
    data = tmp_path / "data"
    with KnowledgeBase(data, CountingEmbedder(), passages_dir=passages) as kb:
        kb.sync()
    db = data / "index" / "chroma.sqlite3"
    if damage == "garbage":
        db.write_bytes(b"this is not a sqlite database " * 200)
    elif damage == "truncate":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    else:
        shutil.rmtree(data / "index")
        (data / "index").write_text("not a directory", encoding="utf-8")
    embedder = CountingEmbedder()
    with KnowledgeBase(data, embedder, passages_dir=passages) as kb:
        report = kb.sync()
        assert report.rebuilt and report.rebuild_reason, report
        assert report.mode == "hybrid" and report.embedded == n_passages()
        out = kb.search("Neural Engine TOPS", 3)
        assert out.mode == "hybrid" and out.passages[0].id == "neural-engine"
    with KnowledgeBase(data, CountingEmbedder(), passages_dir=passages) as kb:
        assert kb.sync().embedded == 0, "the rebuilt store is reused afterwards"


# -- lexical fallback ----------------------------------------------------------------------------------------


def test_no_embedder_means_lexical_with_a_note(tmp_path: Path) -> None:
    with KnowledgeBase(tmp_path, None) as kb:
        report = kb.sync()
        out = kb.search("Which Macs should I avoid for local AI?", 3)
    assert report.mode == "lexical" and report.problem
    assert out.mode == "lexical" and out.passages[0].id == "what-to-avoid"
    assert any("Lexical" in a for a in out.assumptions)
    assert out.sources == [out.passages[0].source]
    assert not (tmp_path / "index").exists(), "without an embedder nothing is written"


def test_ollama_down_falls_back_to_lexical(tmp_path: Path, standin: OllamaStandIn) -> None:
    with KnowledgeBase(tmp_path, standin_embedder(standin)) as kb, standin.down():
        report = kb.sync()
        out = kb.search("Draw Things vs ComfyUI speed", 3)
    assert report.mode == "lexical" and "not reachable" in (report.problem or "")
    assert out.mode == "lexical" and out.passages[0].id == "draw-things-vs-comfyui"
    assert any("not reachable" in a for a in out.assumptions)


def test_embedder_failing_only_at_query_time_falls_back(tmp_path: Path, standin: OllamaStandIn) -> None:
    with KnowledgeBase(tmp_path, standin_embedder(standin)) as kb:
        assert kb.sync().mode == "hybrid"
        with standin.down():
            out = kb.search("external SSD Thunderbolt", 2)
        assert out.mode == "lexical" and out.passages[0].id == "external-storage"
        assert any("not reachable" in a for a in out.assumptions)
        # A server error (the runner crashed) at query time: the same fallback, saying what Ollama said.
        standin.inject("/api/embed", Fault.http(500))
        out = kb.search("external SSD Thunderbolt", 2)
        assert out.mode == "lexical" and out.passages[0].id == "external-storage"
        assert any("HTTP 500" in a and "terminated" in a for a in out.assumptions)
        assert kb.search("external SSD Thunderbolt", 2).mode == "hybrid"  # and back once Ollama answers


def test_vector_store_failing_at_query_time_falls_back(tmp_path: Path) -> None:
    with KnowledgeBase(tmp_path, CountingEmbedder()) as kb:
        kb.sync()
        assert kb._store is not None
        kb._store.close()  # the store is gone underneath the knowledge base
        out = kb.search("thermal throttling Mac mini overnight", 3)
        assert out.mode == "lexical" and out.passages
        report = kb.sync()
        assert report.mode == "hybrid" and report.embedded == 0
        assert kb.search("thermal throttling", 3).mode == "hybrid"


def test_search_validates_input(tmp_path: Path) -> None:
    with KnowledgeBase(tmp_path, None) as kb:
        with pytest.raises(ValueError):
            kb.search("", 5)
        with pytest.raises(ValueError):
            kb.search("bandwidth", 0)
        assert len(kb.search("bandwidth", 20).passages) <= 20
        assert kb.search("qqqzzzxxx", 5).passages == []


def test_progress_bar_is_shown_while_embedding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with KnowledgeBase(tmp_path, CountingEmbedder(), progress=True) as kb:
        kb.sync()
    assert "Embedding" in capsys.readouterr().err


def test_vector_search_asks_for_more_neighbours_than_the_index_holds(tmp_path: Path, passages: Path) -> None:
    """The store is asked for 50 candidates without counting first (counting cost ~5 ms at 100k chunks): a
    three-chunk index returns its three, an emptied one none, and search stays hybrid either way."""
    for path in sorted(passages.glob("*.md"))[3:]:
        path.unlink()
    with KnowledgeBase(tmp_path / "data", CountingEmbedder(), passages_dir=passages) as kb:
        assert kb.sync().mode == "hybrid"
        n_chunks = len(kb.chunks)
        assert n_chunks >= 3
        ranked = kb.retrieve("memory bandwidth", 50, "vector")
        assert sorted(p.id for p in ranked) == sorted(c.citation_id for c in kb.chunks)
        assert kb.search("memory bandwidth", 5).mode == "hybrid"

        for path in passages.glob("*.md"):
            path.unlink()
        report = kb.sync()
        assert report.mode == "hybrid" and report.total_chunks == 0 and report.removed == n_chunks
        assert kb.retrieve("memory bandwidth", 50, "vector") == []
        out = kb.search("memory bandwidth", 5)
        assert out.mode == "hybrid" and out.passages == []
