"""The "Documents & models" tab: add your own documents to the knowledge base, and pull Ollama models.

Until now both were terminal-only (`python -m knowledge add`, `ollama pull`). Here:
- Documents: upload .md/.txt/.html/.pdf files; they go through the same `KnowledgeBase.add_documents` as
  the CLI (so the same conversion, limits and checks of knowledge/documents.py apply), with a progress bar
  while the new chunks are embedded. The list shows what was added; ticking documents and "Remove"
  deletes them.
  An upload is first copied to `data_dir/uploads/<file name>` so that a document's id is stable per file name
  (uploading a changed `notes.md` again replaces it instead of adding a second copy); the copy is deleted once
  converted, because the knowledge base keeps its own converted text.
- Models: pull any Ollama tag with a progress bar fed by Ollama's streamed /api/pull (through
  `OllamaLayer.pull`); when the pull ends the model is selected in the chat's model picker if it can call
  tools, or the page says why it is not offered.

Blocking work (embedding, downloading) runs in a worker thread and reports through a queue; the handler
yields the latest state at most every PROGRESS_INTERVAL_S so a fast stream of progress lines does not flood
the browser.
"""

from __future__ import annotations

import html
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.ollama import OllamaLayer, PullProgress
    from assistant.ui.status import StatusProbe
    from knowledge.documents import UserDocument
    from knowledge.search import KnowledgeBase

__all__ = [
    "ACCEPTED_SUFFIXES",
    "PullTracker",
    "documents_choices",
    "documents_summary",
    "mount_documents_tab",
    "progress_html",
    "stage_uploads",
    "valid_model_name",
]

ACCEPTED_SUFFIXES = [".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf"]
PROGRESS_INTERVAL_S = 0.15
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,150}(:[A-Za-z0-9][A-Za-z0-9._\-]{0,80})?$")


# ---------------------------------------------------------------------------------------------------------
# Pure helpers (tested directly)
# ---------------------------------------------------------------------------------------------------------
def progress_html(fraction: float | None, text: str, *, kind: str = "running") -> str:
    """A native <progress> bar plus one line of text; `fraction` None draws an indeterminate bar."""
    value = "" if fraction is None else f' value="{max(0.0, min(1.0, fraction)):.4f}" max="1"'
    bar = (
        f'<progress class="task-bar"{value} style="width:100%;height:0.9em;display:block"></progress>'
        if kind == "running"
        else ""
    )
    label = f'<div class="task-text">{html.escape(text)}</div>'
    return f'<div class="task-progress task-{kind}">{bar}{label}</div>'


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


@dataclass
class PullTracker:
    """Folds Ollama's pull lines (one per layer per update) into one overall fraction and a status line."""

    model: str
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # digest -> (completed, total)
    status: str = "starting"

    def update(self, event: PullProgress) -> None:
        if event.status:
            self.status = event.status
        if event.digest and event.total:
            self.layers[event.digest] = (min(event.completed or 0, event.total), event.total)

    @property
    def fraction(self) -> float | None:
        total = sum(t for _, t in self.layers.values())
        if not total:
            return None
        return sum(c for c, _ in self.layers.values()) / total

    def text(self) -> str:
        total = sum(t for _, t in self.layers.values())
        if not total:
            return f"{self.model}: {self.status}"
        done = sum(c for c, _ in self.layers.values())
        return f"{self.model}: {self.status} · {100 * done / total:.0f}% ({_gb(done)} of {_gb(total)})"


def valid_model_name(name: str) -> bool:
    """An Ollama tag such as `qwen2.5:7b`, `llama3.2` or `user/model:tag` (nothing that could be a path)."""
    return bool(_MODEL_NAME.match(name)) and ".." not in name


def _safe_file_name(name: str) -> str:
    base = Path(name).name.strip()
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = re.sub(r"[^\w.\- ]+", "_", stem).strip(" .") or "document"
    return stem[:100] + suffix


def stage_uploads(paths: Sequence[str | Path], directory: Path) -> list[Path]:
    """Copy uploaded files to `directory/<their file name>` (one stable path per name, so re-uploading a
    file updates its document instead of duplicating it)."""
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[Path] = []
    for path in paths:
        src = Path(path)
        target = directory / _safe_file_name(src.name)
        shutil.copyfile(src, target)
        staged.append(target)
    return staged


def documents_choices(docs: Sequence[UserDocument]) -> list[tuple[str, str]]:
    """(label, id) pairs for the checkbox list."""
    out = []
    for doc in docs:
        name = Path(doc.original_path).name
        label = f"{doc.title} — {doc.kind}, {_passages(doc.chunks)}, {name}"
        out.append((label, doc.id))
    return out


def _passages(n: int) -> str:
    return f"{n} passage{'s' if n != 1 else ''}"


def documents_summary(docs: Sequence[UserDocument]) -> str:
    if not docs:
        return (
            "No documents yet. Add some above; the assistant searches them and cites them like the article."
        )
    chunks = sum(d.chunks for d in docs)
    return (
        f"**{len(docs)} document{'s' if len(docs) != 1 else ''}** in the knowledge base "
        f"({chunks} passage{'s' if chunks != 1 else ''})."
    )


def _work_in_thread(
    work: Callable[[Callable[[Any], None]], Any], interval_s: float = PROGRESS_INTERVAL_S
) -> Iterator[tuple[str, Any]]:
    """Run `work(report)` in a thread; yield ("progress", latest reported value) at most every
    `interval_s`, then ("done", result) or ("error", exception)."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def target() -> None:
        try:
            events.put(("done", work(lambda value: events.put(("progress", value)))))
        except Exception as exc:  # noqa: BLE001 - handed to the page as a message
            events.put(("error", exc))

    threading.Thread(target=target, name="ui-task", daemon=True).start()
    last_yield = 0.0
    pending: Any = None
    while True:
        try:
            kind, value = events.get(timeout=interval_s)
        except queue.Empty:
            kind, value = "idle", None
        if kind in ("done", "error"):
            yield kind, value
            return
        if kind == "progress":
            pending = value
        now = time.monotonic()
        if pending is not None and now - last_yield >= interval_s:
            yield "progress", pending
            pending, last_yield = None, now


# ---------------------------------------------------------------------------------------------------------
# The tab
# ---------------------------------------------------------------------------------------------------------
@dataclass
class DocumentsTab:
    """The tab's handlers: add and remove documents, list them, pull a model."""

    settings: Settings
    knowledge: KnowledgeBase | None
    ollama: OllamaLayer | None
    probe: StatusProbe

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads"

    def current_docs(self) -> list[UserDocument]:
        if self.knowledge is None:
            return []
        try:
            return self.knowledge.list_user_documents()
        except Exception:  # noqa: BLE001 - a listing problem must not break the tab
            return []

    # ---- documents -----------------------------------------------------------------------------------
    def listing(self) -> tuple[Any, Any]:
        docs = self.current_docs()
        return documents_summary(docs), gr.CheckboxGroup(choices=documents_choices(docs), value=[])  # type: ignore[arg-type]

    def list_docs(self) -> list[dict[str, Any]]:
        return [d.model_dump() for d in self.current_docs()]

    def _error(self, text: str, *, relist: bool = False) -> tuple[Any, ...]:
        """(status, summary, list, files) showing `text` as an error; `relist` refreshes the list too."""
        listing = self.listing() if relist else (gr.skip(), gr.skip())
        return progress_html(None, text, kind="error"), *listing, gr.skip()

    def add_files(self, paths: list[str] | None) -> Iterator[tuple[Any, ...]]:
        """(status, summary, list, files) while uploaded files are converted and embedded."""
        if self.knowledge is None:
            yield self._error("The knowledge base is not loaded.", relist=True)
            return
        if not paths:
            yield self._error("Choose one or more files first.")
            return
        names = ", ".join(Path(p).name for p in paths)
        yield progress_html(None, f"Reading {names} …"), gr.skip(), gr.skip(), gr.skip()
        try:
            staged = stage_uploads(paths, self.uploads_dir)
        except OSError as err:
            yield self._error(f"Could not store the upload: {err}")
            return
        kb = self.knowledge
        skipped: list[str] = []

        def work(report: Callable[[Any], None]) -> Any:
            try:
                return kb.add_documents(
                    staged, on_progress=lambda done, total: report((done, total)), skipped=skipped
                )
            finally:
                for path in staged:
                    path.unlink(missing_ok=True)

        for kind, value in _work_in_thread(work):
            if kind == "progress":
                done, total = value
                text = f"Embedding {names}: {done} of {total} passages"
                yield progress_html(done / total if total else None, text), gr.skip(), gr.skip(), gr.skip()
            elif kind == "error":
                yield self._error(self._add_failure(value), relist=True)
            else:
                text = f"✅ Added {self._added(value, skipped)}"
                yield progress_html(None, text, kind="done"), *self.listing(), None

    def _add_failure(self, exc: BaseException) -> str:
        from knowledge.documents import DocumentError

        message = str(exc).replace(str(self.uploads_dir) + "/", "")
        if not isinstance(exc, DocumentError):
            message = f"Could not add the documents ({type(exc).__name__}): {message}"
        return message

    def _added(self, docs: Sequence[UserDocument], skipped: list[str]) -> str:
        """What was added, whether it is searchable by meaning yet, and which files were left out."""
        added = ", ".join(f"{d.title} ({d.kind}, {_passages(d.chunks)})" for d in docs)
        report = self.knowledge.last_report if self.knowledge is not None else None
        note = ""
        if report is not None and report.mode != "hybrid":
            note = (
                " Searchable by keywords now; they are embedded for meaning-based search as soon "
                "as Ollama answers."
            )
        if skipped:  # one bad file no longer blocks the others; say which were left out and why
            note += " Skipped: " + "; ".join(x.replace(str(self.uploads_dir) + "/", "") for x in skipped)
        return f"{added}.{note}"

    def remove_docs(self, ids: list[str] | None) -> tuple[Any, ...]:
        from knowledge.documents import DocumentError

        if self.knowledge is None:
            return progress_html(None, "The knowledge base is not loaded.", kind="error"), *self.listing()
        if not ids:
            return progress_html(None, "Tick the documents to remove first.", kind="error"), *self.listing()
        removed, problems = [], []
        for doc_id in ids:
            try:
                removed.append(self.knowledge.remove_user_document(doc_id).title)
            except DocumentError as err:
                problems.append(str(err))
        kind = "error" if problems else "done"
        text = "; ".join(([f"🗑 Removed {', '.join(removed)}."] if removed else []) + problems)
        return progress_html(None, text, kind=kind), *self.listing()

    # ---- models --------------------------------------------------------------------------------------
    def pull(self, name: str | None) -> Iterator[tuple[Any, ...]]:
        """(progress, model picker, remembered choices) while a model is pulled into Ollama."""
        from assistant.ollama import OllamaLayer

        model = (name or "").strip()
        if not valid_model_name(model):
            text = "Type a model tag such as qwen2.5:14b." if not model else f"'{model}' is not a model tag."
            yield progress_html(None, text, kind="error"), gr.skip(), gr.skip()
            return
        settings = self.settings
        layer = self.ollama or OllamaLayer(settings.ollama_host, timeout_s=settings.request_timeout_s)
        tracker = PullTracker(model)
        yield progress_html(None, f"{model}: contacting Ollama …"), gr.skip(), gr.skip()

        def work(report: Callable[[Any], None]) -> None:
            def on_event(event: PullProgress) -> None:
                tracker.update(event)
                report((tracker.fraction, tracker.text()))  # a snapshot: the tracker lives in this thread

            layer.pull(model, on_event)

        for kind, value in _work_in_thread(work):
            if kind == "progress":
                yield progress_html(*value), gr.skip(), gr.skip()
            elif kind == "error":
                yield (
                    progress_html(None, f"Could not pull {model}: {value}", kind="error"),
                    gr.skip(),
                    gr.skip(),
                )
                return
        yield self._pulled(model)

    def _pulled(self, model: str) -> tuple[Any, ...]:
        """After a pull: select the model in the chat's picker, or say why it is not offered there."""
        from assistant.ollama import canonical_model_name

        status = self.probe.status(force=True)
        if not status.ok or status.problem:
            text = (
                f"✅ {model} is installed. The chat's model picker offers it once Ollama answers the "
                f"status check ({status.problem or 'no answer'})."
            )
            return progress_html(None, text, kind="done"), gr.skip(), gr.skip()
        wanted = canonical_model_name(model)
        match = next((m for m in status.chat_models if canonical_model_name(m) == wanted), None)
        if match is None:
            why = (
                "it is an embedding model"
                if wanted == canonical_model_name(self.settings.embed_model)
                else "it does not support tool calling, which the chat needs"
            )
            text = f"✅ {model} is installed. It is not offered in the chat's model picker: {why}."
            return progress_html(None, text, kind="done"), gr.skip(), gr.skip()
        choices = list(status.chat_models)
        text = f"✅ {model} is installed and selected in the chat's model picker."
        return progress_html(None, text, kind="done"), gr.Dropdown(choices=choices, value=match), choices


def mount_documents_tab(
    settings: Settings,
    *,
    knowledge: KnowledgeBase | None,
    ollama: OllamaLayer | None,
    probe: StatusProbe,
    model_picker: gr.Dropdown,
    seen_models: gr.State,
) -> None:
    """Build the tab inside the current `gr.Tabs()` and wire it; `model_picker`/`seen_models` are the chat's
    model dropdown and its remembered choices, updated when a pull finishes."""
    handlers = DocumentsTab(settings, knowledge, ollama, probe)
    with gr.Tab("Documents & models", id="documents") as tab, gr.Row(equal_height=False):
        with gr.Column(scale=3):
            docs = _documents_column(handlers.current_docs())
        with gr.Column(scale=2):
            pull_name, pull_btn, pull_status = _models_column()
            # Hidden API surface: the document list as JSON, for gradio_client.
            list_json = gr.JSON(visible=False)
            list_trigger = gr.Button(visible=False)
    add_outputs = [docs.status, docs.summary, docs.checklist, docs.files]
    docs.add.click(
        handlers.add_files, [docs.files], add_outputs, api_name="add_documents", concurrency_limit=2
    )
    removed = [docs.status, docs.summary, docs.checklist]
    docs.remove.click(handlers.remove_docs, [docs.checklist], removed, api_name="remove_documents")
    listed = [docs.summary, docs.checklist]
    tab.select(handlers.listing, None, listed, api_visibility="private", queue=False)
    list_trigger.click(handlers.list_docs, None, list_json, api_name="list_documents")
    pulled = [pull_status, model_picker, seen_models]
    pull_btn.click(handlers.pull, [pull_name], pulled, api_name="pull_model", concurrency_limit=4)


@dataclass
class _DocumentsColumn:
    files: gr.File
    add: gr.Button
    status: gr.HTML
    summary: gr.Markdown
    checklist: gr.CheckboxGroup
    remove: gr.Button


def _documents_column(docs_now: list[UserDocument]) -> _DocumentsColumn:
    gr.Markdown(
        "### Your documents\nAdd notes, articles or papers (.md, .txt, .html, .pdf). They are "
        "converted, split into passages and embedded on this machine; the chat then searches them "
        "and cites them."
    )
    files = gr.File(
        label="Files to add",
        file_count="multiple",
        file_types=ACCEPTED_SUFFIXES,
        type="filepath",
        height=150,
        elem_id="documents-upload",
    )
    return _DocumentsColumn(
        files=files,
        add=gr.Button("Add to the knowledge base", variant="primary", elem_id="documents-add"),
        status=gr.HTML(elem_id="documents-status"),
        summary=gr.Markdown(documents_summary(docs_now), elem_id="documents-summary"),
        checklist=gr.CheckboxGroup(
            choices=documents_choices(docs_now),  # type: ignore[arg-type]
            label="Added documents (tick to remove)",
            elem_id="documents-list",
        ),
        remove=gr.Button("Remove ticked documents", elem_id="documents-remove"),
    )


def _models_column() -> tuple[gr.Dropdown, gr.Button, gr.HTML]:
    from tools.models import catalog

    gr.Markdown(
        "### Models\nDownload a model into Ollama. The chat needs one that supports tool calling "
        "(e.g. qwen2.5, qwen3, llama3.1); it is selected in the chat's model picker when the pull "
        "ends."
    )
    pull_name = gr.Dropdown(
        choices=list(catalog()),
        value=None,
        label="Model tag",
        info="Any tag from ollama.com/library, e.g. qwen2.5:14b.",
        allow_custom_value=True,
        elem_id="pull-model-name",
    )
    pull_btn = gr.Button("Pull", variant="primary", elem_id="pull-model")
    return pull_name, pull_btn, gr.HTML(elem_id="pull-progress")
