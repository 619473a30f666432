"""Hostile files given to `knowledge add` and `launch.py --add-docs`: each is skipped with a one-line reason,
the rest are added, and the app still starts.

A PDF bomb (a /ToUnicode map that would expand to 16 million entries: pypdf's LimitReachedError), HTML nested
100,000 deep (RecursionError in the converter), random bytes named .md, and a symlink inside the folder that
points outside it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from knowledge.search import KnowledgeBase
from tests.harness import free_port, one_page_pdf, pdf_stream
from tests.ollama_standin import OllamaStandIn
from tests.reliability.common import launch_then_stop

ROOT = Path(__file__).resolve().parents[2]
GOOD_TEXT = "# Office notes\n\nThe glimmerwhale studio has an M2 Ultra with 192 GB of memory.\n"


def pdf_bomb() -> bytes:
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap 1 begincodespacerange <00000000> "
        b"<FFFFFFFF> endcodespacerange 1 beginbfrange <00000000> <00FFFFFF> <0041> endbfrange endcmap end end"
    )
    return one_page_pdf(
        b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET", font=b" /ToUnicode 6 0 R", more=[pdf_stream(cmap)]
    )


def hostile_folder(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path / "docs"
    folder.mkdir()
    files = {
        "good": folder / "good.md",
        "bomb": folder / "bomb.pdf",
        "deep": folder / "deep.html",
        "garbage": folder / "garbage.md",
    }
    files["good"].write_text(GOOD_TEXT, encoding="utf-8")
    files["bomb"].write_bytes(pdf_bomb())
    files["deep"].write_text(
        "<html><body>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000 + "</body></html>", encoding="utf-8"
    )
    files["garbage"].write_bytes(random.Random(14).randbytes(200_000))
    secret = tmp_path / "outside" / "secret.md"
    secret.parent.mkdir()
    secret.write_text("# Secret\n\nsshkey-lookalike private words.\n", encoding="utf-8")
    (folder / "link.md").symlink_to(secret)
    files["link"] = folder / "link.md"
    return folder, files


def _knowledge(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knowledge", "--data-dir", str(data_dir), "--lexical", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_knowledge_add_skips_each_hostile_file_with_one_line_and_adds_the_rest(tmp_path: Path) -> None:
    folder, files = hostile_folder(tmp_path)
    done = _knowledge("add", str(folder), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "added user-good" in done.stdout
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped ")]
    reasons = {name: [line for line in skipped if str(path) in line] for name, path in files.items()}
    assert len(skipped) == 4, done.stderr
    assert "ToUnicode" in reasons["bomb"][0]
    assert "nested too deeply" in reasons["deep"][0]
    assert "binary" in reasons["garbage"][0]
    assert "not followed" in reasons["link"][0] and "--follow-symlinks" in reasons["link"][0]
    listed = _knowledge("list", data_dir=tmp_path / "data").stdout
    assert "Office notes" in listed and "Secret" not in listed and "garbage" not in listed


def test_symlinks_are_followed_only_when_asked(tmp_path: Path) -> None:
    folder, _ = hostile_folder(tmp_path)
    with KnowledgeBase(tmp_path / "data", None, progress=False) as kb:
        skipped: list[str] = []
        kb.add_documents([folder], skipped=skipped, follow_symlinks=True)
        assert not any("not followed" in s for s in skipped), skipped
        assert "Secret" in {d.title for d in kb.list_user_documents()}
        assert kb.search("sshkey-lookalike", 1).passages[0].title.startswith("Secret")


def test_launch_with_hostile_documents_still_starts(standin: OllamaStandIn, tmp_path: Path) -> None:
    _, files = hostile_folder(tmp_path)
    hostile = ("bomb", "deep", "garbage")
    p = launch_then_stop(
        standin.url,
        "--data-dir",
        str(tmp_path / "data"),
        "--add-docs",
        *(str(files[name]) for name in hostile),
        str(files["good"]),
        port=free_port(),
    )
    assert "+ Office notes" in p.output
    for name in hostile:
        assert any(line.strip().startswith(f"skipped {files[name]}") for line in p.lines), p.output


def test_broken_front_matter_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A .md whose leading --- block is not valid YAML (or a python tag yaml.safe_load refuses) logged a
    traceback and a reason spanning six lines of YAML diagnostics."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text(GOOD_TEXT, encoding="utf-8")
    (folder / "bad-yaml.md").write_text("---\n[unclosed\n---\n# Bad\n\nbody\n", encoding="utf-8")
    (folder / "tag.md").write_text(
        '---\ntitle: !!python/object/apply:os.system ["echo hi"]\n---\n# Tag\n\nbody\n', encoding="utf-8"
    )
    done = _knowledge("add", str(folder), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "added user-good" in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    skipped = [line for line in lines if line.startswith("skipped ")]
    assert len(skipped) == 2 and all("front matter" in line and "not valid YAML" in line for line in skipped)
    assert len(lines) == 2, done.stderr  # one line per skipped file, nothing else
