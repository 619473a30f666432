"""The "Documents & models" tab through the served app's API (gradio_client), against the Ollama stand-in.

Documents are uploaded as a browser would (multipart upload, then the tab's handler), embedded by the
stand-in, searched, listed and removed. Models are pulled through the stand-in's streamed /api/pull; a gate
in the stand-in holds the pull half-way so the test sees the progress before the end, without sleeping.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from assistant.ollama import PullProgress
from assistant.ui.documents import PullTracker, progress_html, stage_uploads, valid_model_name
from tests.harness import HANG_S, chat_client
from tests.ollama_standin import Fault, OllamaStandIn


def _note(path: Path, sections: int) -> Path:
    """A markdown note with `sections` headed sections: one passage each, so the embedding has steps."""
    parts = ["# Studio rack notes\n"]
    for i in range(sections):
        parts.append(
            f"## Shelf {i}\n\nThe rack shelf number {i} holds a zanzibar-{i} unit that draws "
            f"{100 + i} watts and is dusted every {i + 2} weeks by the night crew.\n"
        )
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _first_output(job: Any, predicate: Any) -> Any:
    """The first streamed output of `job` that satisfies `predicate` (iterating the job blocks until the next
    output arrives); fails if the job ends without one."""
    seen = []
    for output in job:
        seen.append(output)
        if predicate(output):
            return output
    raise AssertionError(f"the job ended without a matching output: {seen}")


def test_upload_embeds_with_progress_lists_searches_and_removes(
    standin: OllamaStandIn, served: tuple[str, Any], tmp_path: Path
) -> None:
    from gradio_client import handle_file

    url, services = served
    note = _note(tmp_path / "rack-notes.md", sections=40)
    embeds_before = len(standin.embedded_texts())
    client = chat_client(url)

    job = client.submit([handle_file(str(note))], api_name="/add_documents")
    final = job.result(timeout=HANG_S)
    statuses = [str(o[0]) for o in job.outputs()]
    assert "Added Studio rack notes (markdown, " in final[0], final[0]
    # Progress while embedding: at least one bar with a partial count, before the final message.
    progress = [s for s in statuses if "<progress" in s and "Embedding rack-notes.md:" in s]
    assert progress, statuses
    assert any(" of " in s and "passages" in s for s in progress)
    embedded = standin.embedded_texts()[embeds_before:]
    assert sum("zanzibar" in t for t in embedded) >= 40  # 40 sections, more than one batch of 32

    listed = client.predict(api_name="/list_documents")
    assert [(d["title"], d["kind"]) for d in listed] == [("Studio rack notes", "markdown")]
    assert listed[0]["chunks"] >= 40
    assert Path(listed[0]["original_path"]).name == "rack-notes.md"
    # The staged copy is gone; the knowledge base keeps its converted text.
    assert not any((services.settings.data_dir / "uploads").glob("*"))

    found = services.knowledge.search("zanzibar-7 unit watts", k=3)
    assert found.mode == "hybrid"
    assert any(p.origin == "user" and "zanzibar-7" in p.text for p in found.passages)

    # Uploading the same file name again replaces the document instead of adding a second one.
    _note(tmp_path / "rack-notes.md", sections=3)
    client.predict([handle_file(str(note))], api_name="/add_documents")
    listed = client.predict(api_name="/list_documents")
    assert len(listed) == 1 and listed[0]["chunks"] < 40

    status, _summary, _ids = client.predict([listed[0]["id"]], api_name="/remove_documents")
    assert "Removed Studio rack notes" in status
    assert client.predict(api_name="/list_documents") == []
    assert not any(p.origin == "user" for p in services.knowledge.search("zanzibar unit", k=5).passages)


def test_upload_rejects_unsupported_and_empty_files_with_a_message(
    served: tuple[str, Any], tmp_path: Path
) -> None:
    from gradio_client import handle_file

    url, _ = served
    client = chat_client(url)
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n", encoding="utf-8")
    status = client.predict([handle_file(str(empty))], api_name="/add_documents")[0]
    assert "Nothing was added" in status and "empty.txt: contains no text" in status
    assert "uploads/" not in status  # the staging directory is not shown to the user
    assert client.predict(api_name="/list_documents") == []


def test_upload_over_the_size_limit_is_refused(served: tuple[str, Any], tmp_path: Path) -> None:
    from gradio_client import handle_file

    from assistant.ui import UPLOAD_LIMIT_BYTES
    from knowledge.documents import MAX_FILE_BYTES

    assert UPLOAD_LIMIT_BYTES == MAX_FILE_BYTES
    url, _ = served
    big = tmp_path / "huge.txt"
    with big.open("wb") as f:
        f.truncate(UPLOAD_LIMIT_BYTES + 1)
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        chat_client(url).predict([handle_file(str(big))], api_name="/add_documents")
    assert chat_client(url).predict(api_name="/list_documents") == []


def test_pull_shows_progress_then_selects_the_model(standin: OllamaStandIn, served: tuple[str, Any]) -> None:
    url, _ = served
    standin.pull_gate = threading.Event()
    client = chat_client(url)
    job = client.submit("qwen2.5:32b", api_name="/pull_model")
    try:
        mid = str(_first_output(job, lambda o: "50%" in str(o[0]))[0])
        assert '<progress class="task-bar" value="0.' in mid and "qwen2.5:32b: pulling" in mid
        assert not job.done()  # held by the gate: this is the progress of a pull still running
    finally:
        standin.pull_gate.set()
    status, picked = job.result(timeout=HANG_S)
    assert "qwen2.5:32b is installed and selected" in status
    assert picked["value"] == "qwen2.5:32b"  # the chat's model picker, updated
    assert ["qwen2.5:32b", "qwen2.5:32b"] in picked["choices"]
    assert "qwen2.5:32b" in standin.installed()


def test_pull_errors_are_messages(standin: OllamaStandIn, served: tuple[str, Any]) -> None:
    url, _ = served
    client = chat_client(url)
    status, _ = client.predict("no-such-model:3b", api_name="/pull_model")
    assert "Could not pull no-such-model:3b" in status and "Traceback" not in status
    status, _ = client.predict("../../etc/passwd", api_name="/pull_model")
    assert "is not a model tag" in status
    # A model without tool calling is pulled but not offered for chat, and the page says why.
    status, _ = client.predict("gemma2:9b", api_name="/pull_model")
    assert "does not support tool calling" in status
    # Pulled, but the status check after it fails: the page does not guess at a reason.
    standin.inject("/api/tags", Fault.http(500))
    status, _ = client.predict("llama3.1:8b", api_name="/pull_model")
    assert "llama3.1:8b is installed" in status and "once Ollama answers" in status
    assert "tool calling" not in status


def test_pull_tracker_and_helpers(tmp_path: Path) -> None:
    tracker = PullTracker("m:1b")
    assert tracker.fraction is None and tracker.text() == "m:1b: starting"
    tracker.update(PullProgress(model="m:1b", status="pulling a", digest="a", total=900, completed=450))
    tracker.update(PullProgress(model="m:1b", status="pulling b", digest="b", total=100, completed=0))
    assert tracker.fraction == pytest.approx(0.45)
    tracker.update(PullProgress(model="m:1b", status="pulling b", digest="b", total=100, completed=100))
    assert tracker.fraction == pytest.approx(0.55)
    assert "55%" in tracker.text()
    assert 'value="1.0000"' in progress_html(3.0, "x")
    assert "&lt;b&gt;" in progress_html(None, "<b>")
    assert valid_model_name("qwen2.5:7b") and valid_model_name("user/model:tag")
    assert not valid_model_name("../x") and not valid_model_name("") and not valid_model_name("a b")
    src = tmp_path / "we ird<name>.md"
    src.write_text("x", encoding="utf-8")
    (staged,) = stage_uploads([src], tmp_path / "uploads")
    assert staged.parent == tmp_path / "uploads" and staged.suffix == ".md" and "<" not in staged.name


def test_readme_screenshots_exist_and_come_from_the_browser_tests() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    shots = re.findall(r"\(docs/screenshots/([\w-]+)\.png\)", readme)
    assert set(shots) == {"chat", "tools", "documents-and-models", "context"}
    tests = "".join(
        (root / "tests" / f).read_text() for f in ("test_browser.py", "test_browser_documents.py")
    )
    for name in shots:
        assert (root / "docs" / "screenshots" / f"{name}.png").stat().st_size > 10_000, name
        assert f'save_screenshot(page, "{name}"' in tests, name
