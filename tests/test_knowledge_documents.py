"""User documents (markdown, text, HTML, PDF): add, search, list, remove, and the knowledge CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge import DocumentError, KnowledgeBase
from knowledge.cli import CliSettings, add_documents_cli, main
from tests.harness import one_page_pdf, standin_embedder
from tests.ollama_standin import OllamaStandIn
from tests.ollama_standin.embedder import embed_text

ROOT = Path(__file__).resolve().parents[1]


class StandinEmbedder:
    model_name = "standin-embed"

    def __init__(self) -> None:
        self.documents_embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents_embedded += len(texts)
        return [embed_text("search_document: " + t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return embed_text("search_query: " + text)


def minimal_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF with real text (Helvetica)."""
    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    return one_page_pdf(content.encode("latin-1"), version="1.4")


@pytest.fixture
def docs(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    md = src / "notes.md"
    md.write_text(
        "---\ntitle: My cluster notes\n---\n# Cluster\n\nThe quokkafrog cluster uses four Mac minis.\n\n"
        "## Costs\n\n| item | price |\n|---|---|\n| mini | 1400 |\n",
        encoding="utf-8",
    )
    txt = src / "plain.txt"
    txt.write_text("Plain text about the xylophant benchmark.\n\nSecond paragraph.", encoding="utf-8")
    html = src / "page.html"
    html.write_text(
        "<html><head><title>Saved page</title><script>var narwhalbeam = 1;</script></head><body>"
        "<nav>menu</nav><h1>Heading</h1><p>The glimmerwhale method is fast.</p>"
        "<table><tr><th>chip</th><th>tok/s</th></tr><tr><td>M9</td><td>99</td></tr></table></body></html>",
        encoding="utf-8",
    )
    pdf = src / "paper.pdf"
    pdf.write_bytes(minimal_pdf(["The snorklebat accelerator paper.", "It measured 123 tokens per second."]))
    return {"md": md, "txt": txt, "html": html, "pdf": pdf}


def test_add_search_list_remove_all_formats(tmp_path: Path, docs: dict[str, Path]) -> None:
    embedder = StandinEmbedder()
    with KnowledgeBase(tmp_path / "data", embedder) as kb:
        baseline = kb.sync().total_chunks
        added = kb.add_documents(list(docs.values()))
        assert [d.kind for d in added] == ["markdown", "text", "html", "pdf"]
        assert all(d.chunks >= 1 and d.id.startswith("user-") for d in added)
        assert added[0].title == "My cluster notes" and added[2].title == "Saved page"
        report = kb.last_report
        assert report is not None and report.mode == "hybrid"
        assert report.embedded == sum(d.chunks for d in added), "only the new chunks are embedded"

        for word, kind in [
            ("quokkafrog", "md"),
            ("xylophant", "txt"),
            ("glimmerwhale", "html"),
            ("snorklebat", "pdf"),
        ]:
            out = kb.search(f"what about {word}?", 3)
            assert out.mode == "hybrid"
            top = out.passages[0]
            assert top.origin == "user" and word in top.text.lower(), (word, out.passages)
            assert top.source == f"Your document: {docs[kind].name}"
        assert all("narwhalbeam" not in p.text for p in kb.search("narwhalbeam", 5).passages), (
            "script contents are not ingested"
        )
        pdf_hit = kb.search("snorklebat accelerator", 1).passages[0]
        assert "Page 1" in pdf_hit.section
        table_hit = kb.search("mini price 1400", 3).passages
        assert any("| mini | 1400 |" in p.text and "Costs" in p.section for p in table_hit)

        listed = kb.list_user_documents()
        assert {d.id for d in listed} == {d.id for d in added}
        removed = kb.remove_user_document(added[0].id)
        assert removed.title == "My cluster notes"
        assert all(
            p.origin != "user" or "quokkafrog" not in p.text for p in kb.search("quokkafrog", 5).passages
        )
        assert kb.last_report is not None and kb.last_report.removed == added[0].chunks
        assert kb.last_report.total_chunks == baseline + sum(d.chunks for d in added[1:])

    with KnowledgeBase(tmp_path / "data", StandinEmbedder()) as kb:
        assert len(kb.list_user_documents()) == 3
        assert kb.sync().embedded == 0, "user documents survive a restart without re-embedding"


def test_readding_same_file_updates_instead_of_duplicating(tmp_path: Path, docs: dict[str, Path]) -> None:
    with KnowledgeBase(tmp_path / "data", StandinEmbedder()) as kb:
        first = kb.add_documents([docs["txt"]])
        docs["txt"].write_text("Now it talks about the blorptastic result.", encoding="utf-8")
        second = kb.add_documents([docs["txt"]])
        assert first[0].id == second[0].id and len(kb.list_user_documents()) == 1
        assert "blorptastic" in kb.search("blorptastic", 1).passages[0].text
        assert all("xylophant" not in p.text for p in kb.search("xylophant", 5).passages)


def test_bad_inputs_are_skipped_with_clear_reasons(tmp_path: Path, docs: dict[str, Path]) -> None:
    (tmp_path / "word.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    bad = [tmp_path / "word.docx", tmp_path / "missing.md", tmp_path / "empty.txt", tmp_path / "broken.pdf"]
    with KnowledgeBase(tmp_path / "data", None) as kb:
        with pytest.raises(DocumentError) as info:
            kb.add_documents(bad)
        message = str(info.value)
        assert "Nothing was added" in message and "unsupported file type '.docx'" in message
        assert "missing.md: no such file" in message and "empty.txt: contains no text" in message
        assert "broken.pdf" in message
        assert kb.list_user_documents() == []
        # One bad file no longer blocks the good ones: each is skipped with a one-line reason.
        skipped: list[str] = []
        added = kb.add_documents([docs["md"], *bad], skipped=skipped)
        assert [d.kind for d in added] == ["markdown"]
        assert len(skipped) == 4 and all("\n" not in line for line in skipped), skipped
        with pytest.raises(DocumentError, match="No user document with id 'user-nope'"):
            kb.remove_user_document("user-nope")


def test_directory_is_expanded_and_lexical_mode_works(tmp_path: Path, docs: dict[str, Path]) -> None:
    with KnowledgeBase(tmp_path / "data", None) as kb:
        added = kb.add_documents([docs["md"].parent])
        assert {d.kind for d in added} == {"markdown", "text", "html", "pdf"}
        out = kb.search("glimmerwhale", 2)
        assert out.mode == "lexical" and out.passages[0].origin == "user"


def test_documents_are_stored_even_when_ollama_is_down(
    tmp_path: Path, docs: dict[str, Path], standin: OllamaStandIn
) -> None:
    embedder = standin_embedder(standin)
    with KnowledgeBase(tmp_path / "data", embedder) as kb, standin.down():
        kb.add_documents([docs["txt"]])
        assert kb.last_report is not None and kb.last_report.mode == "lexical"
        assert "not reachable" in (kb.last_report.problem or "")
        assert kb.search("xylophant", 1).passages[0].origin == "user"
    with KnowledgeBase(tmp_path / "data", embedder) as kb:
        report = kb.sync()
        assert report.mode == "hybrid" and report.user_chunks == 1
        assert kb.search("xylophant benchmark", 1).passages[0].origin == "user"


# -- CLI -----------------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_add_list_search_remove(
    tmp_path: Path, docs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    host = f"http://127.0.0.1:{_closed_port()}"  # nothing listens: the CLI must degrade, not fail
    common = ["--data-dir", data, "--ollama-host", host]
    assert main([*common, "add", str(docs["md"]), str(docs["pdf"])]) == 0
    out = capsys.readouterr().out
    assert "added user-notes-" in out and "added user-paper-" in out and "mode lexical" in out
    assert main([*common, "list"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 2
    assert main([*common, "search", "snorklebat", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "mode: lexical" in out and "user-paper-" in out
    assert main([*common, "--lexical", "search", "--json", "bandwidth", "ceiling"]) == 0
    assert '"mode": "lexical"' in capsys.readouterr().out
    doc_id = listed[0].split("\t")[0]
    assert main([*common, "remove", doc_id]) == 0
    assert f"removed {doc_id}" in capsys.readouterr().out
    assert main([*common, "remove", doc_id]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No user document") and "Traceback" not in err
    assert main([*common, "search", "x", "-k", "50"]) == 2
    assert "between 1 and 20" in capsys.readouterr().err


def test_cli_does_not_store_the_same_text_twice_from_another_path(
    tmp_path: Path, docs: dict[str, Path], standin: OllamaStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of an added file (another name, another folder) is one document: the second add names the
    earlier path, stores and embeds nothing, and search shows the text once."""
    common = ["--data-dir", str(tmp_path / "data"), "--ollama-host", standin.url]
    assert main([*common, "add", str(docs["txt"])]) == 0
    first = capsys.readouterr().out
    assert "added user-plain-" in first and "mode hybrid" in first
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = elsewhere / "copy-of-plain.txt"
    copy.write_bytes(docs["txt"].read_bytes())
    standin.clear_requests()

    assert main([*common, "add", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy}: already in the knowledge base as user-plain-" in err, err
    assert f"added from {docs['txt'].resolve()}); not added again." in err and "Traceback" not in err
    assert not standin.embed_requests(), "nothing new to embed"
    # Both at once, next to a new file: the new one is added, the copy skipped with its reason.
    other = elsewhere / "other.md"
    other.write_text("# Other\n\nThe flumpetron result is new.\n", encoding="utf-8")
    assert main([*common, "add", str(copy), str(other)]) == 0
    out, err = capsys.readouterr()
    assert "added user-other-" in out and "user-copy-of-plain" not in out
    assert f"\nskipped {copy}: already in the knowledge base as user-plain-" in "\n" + err, err
    assert main([*common, "list"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 2 and not any("copy-of-plain" in line for line in listed), listed
    assert main([*common, "search", "xylophant benchmark", "-k", "5"]) == 0
    assert capsys.readouterr().out.count("Plain text about the xylophant benchmark") == 1


def test_cli_re_adding_a_file_edited_into_another_documents_text_still_updates_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Adding the same path again is an update, even when its new text is that of another stored document:
    the file's old text must not stay searchable under its name."""
    common = ["--data-dir", str(tmp_path / "data"), "--lexical"]
    one, two = tmp_path / "a" / "one.md", tmp_path / "b" / "two.md"
    one.parent.mkdir()
    two.parent.mkdir()
    one.write_text("# One\n\nThe quorblat figure was 12 tok/s.\n", encoding="utf-8")
    two.write_text("# Two\n\nThe zindle figure was 34 tok/s.\n", encoding="utf-8")
    assert main([*common, "add", str(one), str(two)]) == 0
    capsys.readouterr()
    one.write_bytes(two.read_bytes())  # the user edits one.md into a copy of two.md, and adds it again

    assert main([*common, "add", str(one)]) == 0, capsys.readouterr().err
    assert "added user-one-" in capsys.readouterr().out
    assert main([*common, "search", "quorblat", "-k", "5"]) == 0
    assert "quorblat" not in capsys.readouterr().out, "one.md's old text is still in the knowledge base"
    # A copy from a third path is still refused.
    three = tmp_path / "three.md"
    three.write_bytes(two.read_bytes())
    assert main([*common, "add", str(three)]) == 2
    assert f"{three}: already in the knowledge base as user-" in capsys.readouterr().err


def test_add_documents_cli_reports_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = CliSettings(data_dir=tmp_path / "data", ollama_host=f"http://127.0.0.1:{_closed_port()}")
    code = add_documents_cli([tmp_path / "nope.pdf"], settings)
    err = capsys.readouterr().err
    assert code == 2 and "nope.pdf: no such file" in err and "Traceback" not in err


def test_cli_as_a_process_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "x.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "knowledge",
            "--data-dir",
            str(tmp_path),
            "--lexical",
            "add",
            str(tmp_path / "x.doc"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "unsupported file type '.doc'" in result.stderr and "Traceback" not in result.stderr


def test_cli_names_a_malformed_ollama_host_and_a_flag_overrides_it(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    """OLLAMA_HOST with a port that is not a number: one line naming it, exit 2 (it used to be a traceback
    from `import ollama`); with --ollama-host given, the variable is not read and the command works."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "knowledge", "--data-dir", str(tmp_path), *args, "list"],
            cwd=ROOT,
            env={**os.environ, "OLLAMA_HOST": "localhost:abc"},
            capture_output=True,
            text=True,
            timeout=300,
        )

    bad = cli()
    assert bad.returncode == 2 and bad.stderr.splitlines() == [
        "error: OLLAMA_HOST: not an address Ollama can be reached at (e.g. http://127.0.0.1:11434), got "
        "'localhost:abc'"
    ]
    good = cli("--ollama-host", standin.url)
    assert good.returncode == 0, good.stderr
    assert "Traceback" not in good.stderr
