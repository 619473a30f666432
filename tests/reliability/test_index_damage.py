"""The knowledge index damaged under a running app: deleted, truncated, disk full, model changed.

The rule: rebuild or report, and never serve a half-built index as if it were whole. Everything goes through
the real embedding path (OllamaLayer.embedder -> official client -> stand-in).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.ollama import OllamaLayer
from knowledge.search import KnowledgeBase
from tests.harness import HANG_S
from tests.ollama_standin import OllamaStandIn
from tests.ollama_standin.models import NOMIC_EMBED_TEXT

QUESTION = "Which Mac should I buy to run 70B models?"


def open_kb(standin: OllamaStandIn, data_dir: Path, model: str = "nomic-embed-text") -> KnowledgeBase:
    return KnowledgeBase(data_dir, OllamaLayer(standin.url).embedder(model, timeout_s=HANG_S))


def assert_whole(kb: KnowledgeBase) -> None:
    """Hybrid search over every chunk: the vector store holds exactly the corpus."""
    out = kb.search(QUESTION, 5)
    assert out.mode == "hybrid" and out.passages, out
    assert kb._store is not None and kb._store.ids() == {c.id for c in kb.chunks}


def test_data_dir_deleted_while_running(standin: OllamaStandIn, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_kb(standin, data) as kb:
        total = kb.sync().total_chunks
        shutil.rmtree(data)
        out = kb.search(QUESTION, 5)  # whatever the store does now, answering goes on
        assert out.passages
        report = kb.sync()
        assert report.problem is None, report
        assert report.embedded == total, "the lost index is rebuilt in full, not served empty"
        assert_whole(kb)
    with open_kb(standin, data) as kb:
        assert kb.sync().embedded == 0, "and it persists again"


@pytest.mark.parametrize("size", [0, 4096])
def test_index_files_truncated_while_running(standin: OllamaStandIn, tmp_path: Path, size: int) -> None:
    data = tmp_path / "data"
    with open_kb(standin, data) as kb:
        total = kb.sync().total_chunks
        for f in (data / "index").rglob("*"):
            if f.is_file():
                with f.open("r+b") as handle:
                    handle.truncate(min(size, f.stat().st_size))
        out = kb.search(QUESTION, 5)
        assert out.passages, "search still answers"
        if out.mode == "lexical":
            assert any("lexical" in a.lower() or "index" in a.lower() for a in out.assumptions), out
    with open_kb(standin, data) as kb:  # a restart finds the damage
        report = kb.sync()
        assert report.problem is None and (report.rebuilt or report.embedded == total), report
        assert_whole(kb)


def test_embedding_model_changed_rebuilds(standin: OllamaStandIn, tmp_path: Path) -> None:
    standin.add_model(dataclasses.replace(NOMIC_EMBED_TEXT, name="mxbai-embed-large:latest"))
    data = tmp_path / "data"
    with open_kb(standin, data) as kb:
        kb.sync()
    with open_kb(standin, data, "mxbai-embed-large") as kb:
        report = kb.sync()
        assert report.rebuilt and "mxbai-embed-large" in (report.rebuild_reason or ""), report
        assert report.embedded == report.total_chunks
        assert_whole(kb)
    assert {r.model for r in standin.embed_requests()} == {"nomic-embed-text", "mxbai-embed-large"}


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB filesystem (tmpfs), so writes fail with ENOSPC exactly as on a full disk."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_disk_full_during_index_build_is_reported_and_not_served(
    standin: OllamaStandIn, tiny_disk: Path
) -> None:
    with open_kb(standin, tiny_disk / "data") as kb:
        report = kb.sync()
        assert report.mode == "lexical" and report.problem, report
        out = kb.search(QUESTION, 5)
        assert out.mode == "lexical" and out.passages, "a partial vector index is never used"
        assert any("lexical" in a.lower() for a in out.assumptions)
        # Space comes back (the user frees some): the next sync completes the index.
        subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
        kb._last_sync_attempt = 0.0
        report = kb.sync()
        assert report.mode == "hybrid" and report.problem is None, report
        assert_whole(kb)


def _many_notes(folder: Path, notes: int = 150, parts: int = 8) -> Path:
    """Enough chunks (> Chroma's 1000-vector persistence threshold) that most vectors live in the segment
    files, not in the write-ahead log, as in a real index of a few hundred documents."""
    folder.mkdir()
    for i in range(notes):
        sections = "\n\n".join(
            f"## Part {j}\n\nMachine {i} part {j} reads {i * j} GB/s of memory bandwidth in this note."
            for j in range(parts)
        )
        (folder / f"note-{i}.md").write_text(f"# Note {i}\n\n{sections}\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_damaged_vector_segment_is_noticed_and_rebuilt(
    standin: OllamaStandIn, tmp_path: Path, damage: str
) -> None:
    """Chroma still lists every id after its vector files are gone; the open must notice and rebuild."""
    data = tmp_path / "data"
    with open_kb(standin, data) as kb:
        kb.add_documents([_many_notes(tmp_path / "notes")])
        total = kb.sync().total_chunks
        assert total > 1100
    segment_files = [f for d in (data / "index").iterdir() if d.is_dir() for f in d.iterdir() if f.is_file()]
    assert segment_files, "the vectors were persisted into segment files"
    for f in segment_files:
        if damage == "deleted":
            f.unlink()
        elif f.name == "data_level0.bin":  # the vectors themselves; the pickled id map stays readable
            with f.open("r+b") as handle:
                handle.truncate(f.stat().st_size // 3)
    with open_kb(standin, data) as kb:
        report = kb.sync()
        assert report.problem is None, report
        assert report.rebuilt, report.summary()
        assert report.embedded == total, report.summary()
        assert "rebuilt" in report.summary()
        assert_whole(kb)
        store = kb._store
        assert store is not None
        reachable = store.query(kb.embedder.embed_query(QUESTION), total)  # type: ignore[union-attr]
        assert len(reachable) >= 0.9 * total, "the vectors can be found again (HNSW is approximate)"
    with open_kb(standin, data) as kb:
        again = kb.sync()
        assert not again.rebuilt and again.embedded == 0, again.summary()


def test_missing_index_database_is_noticed_and_said(standin: OllamaStandIn, tmp_path: Path) -> None:
    """chroma.sqlite3 deleted, segment files left: Chroma silently started an empty store next to the orphaned
    vector files and everything was re-embedded with no word of why. The rebuild must say so and clean up."""
    data = tmp_path / "data"
    with open_kb(standin, data) as kb:
        kb.add_documents([_many_notes(tmp_path / "notes")])
        total = kb.sync().total_chunks
    old_segments = {d.name for d in (data / "index").iterdir() if d.is_dir()}
    assert old_segments
    (data / "index" / "chroma.sqlite3").unlink()
    with open_kb(standin, data) as kb:
        report = kb.sync()
        assert report.rebuilt and "chroma.sqlite3" in report.summary(), report.summary()
        assert report.embedded == total, report.summary()
        assert_whole(kb)
    assert not old_segments & {d.name for d in (data / "index").iterdir() if d.is_dir()}
