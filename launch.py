"""Start Mac AI Advisor: check Ollama, pull the models, build the index, open the chat.

    uv run launch.py [--port 7860] [--no-browser] [--add-docs notes.md paper.pdf] ...

One command, no other step: on a Mac with Ollama running this ends in a working chat in the browser. Without
Ollama it still starts (the Tools and Search tabs work), says what to do, and the chat recovers by itself once
Ollama answers. Every flag mirrors a field of `assistant.config.Settings` and its environment variable, so
`OLLAMA_HOST=... uv run launch.py` and `uv run launch.py --ollama-host ...` mean the same thing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.http_guard import is_loopback_name
from knowledge import proxy_env

if TYPE_CHECKING:  # the real imports are deferred: they are slow, and --help must stay instant
    from assistant.app_graph import Services
    from assistant.config import Settings
    from assistant.ollama import EnsureReport, OllamaLayer, PullProgress
    from knowledge.search import KnowledgeBase

# Importing gradio takes seconds; start it at once in the background so it overlaps the Ollama checks
# and the index sync instead of adding to them (see bench/startup.py).
_UI_IMPORT: dict[str, Any] = {}


def _import_ui() -> None:
    try:
        import assistant.ui as ui

        _UI_IMPORT["module"] = ui
    except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by _ui_module()
        _UI_IMPORT["error"] = exc


UI_HEARTBEAT_S = 5.0


def _ui_module(thread: threading.Thread | None, *, announce: bool = False) -> Any:
    """The imported `assistant.ui`, waiting for the background import. `announce` prints the wait (tens of
    seconds on a cold disk) with a line every UI_HEARTBEAT_S, so the terminal never looks hung."""
    if thread is not None:
        if announce and thread.is_alive():
            started = time.monotonic()
            _say("Loading the web UI (Gradio) ...")
            while thread.is_alive():
                thread.join(UI_HEARTBEAT_S)
                if thread.is_alive():
                    _say(f"  still loading the web UI ({time.monotonic() - started:.0f} s) ...")
            _say(f"  web UI loaded in {time.monotonic() - started:.1f} s")
        thread.join()
    if "error" in _UI_IMPORT:
        raise _UI_IMPORT["error"]
    if "module" not in _UI_IMPORT:
        _import_ui()
        return _ui_module(None)
    return _UI_IMPORT["module"]


def _field_help(name: str, extra: str = "") -> str:
    from assistant.config import Settings, env_variable

    info = Settings.model_fields[name]
    env = env_variable(name)
    default = info.get_default(call_default_factory=True)
    text = info.description or name
    return f"{text}{extra} [env {env}; default: {default}]"


def build_parser() -> argparse.ArgumentParser:
    """Flags are left unset (argparse.SUPPRESS) so that only flags actually given override the environment."""
    p = argparse.ArgumentParser(
        prog="launch.py",
        description="Start the Mac AI Advisor chat on 127.0.0.1: checks Ollama, pulls the chat and embedding "
        "models (with progress), builds or updates the knowledge index, then serves the UI and opens it.",
        argument_default=argparse.SUPPRESS,
    )
    _add_settings_flags(p)
    p.add_argument(
        "--add-docs",
        metavar="PATH",
        nargs="+",
        type=Path,
        help="Add your own documents (.md .txt .html .pdf) to the knowledge base before starting.",
    )
    p.add_argument("--no-browser", action="store_true", help="Do not open a browser tab.")
    p.add_argument(
        "--no-pull",
        action="store_true",
        help="Do not pull missing models; the chat tells you what to pull instead.",
    )
    return p


# What the help says beyond the field's description, and the placeholder shown for its value.
_FLAG_NOTES = {
    "host": " Anything but loopback requires --auth.",
    "auth": " Prefer the env var: a flag is visible in the process list.",
}
_METAVARS = {
    "ollama_host": "URL",
    "chroma_url": "URL",
    "chat_model": "TAG",
    "embed_model": "TAG",
    "data_dir": "DIR",
    "host": "ADDR",
    "auth": "USER:PASS",
    "num_ctx": "N|auto",
}


def _add_settings_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Settings field (--chat-model for chat_model ...), its help from the field description."""
    from assistant.config import Settings

    for name, info in Settings.model_fields.items():
        kind: Any = _num_ctx_arg if name == "num_ctx" else _flag_type(info.annotation)
        metavar = _METAVARS.get(name, "N" if kind in (int, float) else "VALUE")
        help_text = _field_help(name, _FLAG_NOTES.get(name, ""))
        p.add_argument("--" + name.replace("_", "-"), dest=name, metavar=metavar, type=kind, help=help_text)


def _flag_type(annotation: Any) -> type:
    """int, float or Path for fields of that type; text (validated by Settings) for the rest."""
    return annotation if annotation in (int, float, Path) else str


def _num_ctx_arg(text: str) -> int | str:
    """`auto` or a whole number of tokens (the range is checked by Settings, like the env variable)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of tokens or 'auto', got {text!r}") from None


class StartupError(Exception):
    """A problem the user must fix before the app can start; the message says how."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    from pydantic import ValidationError

    from assistant.config import Settings, invalid_settings

    overrides = {k: getattr(args, k) for k in Settings.model_fields if hasattr(args, k)}
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise StartupError(f"Invalid setting(s): {invalid_settings(err, overrides)}") from None


def _make_data_dir(data_dir: Path) -> None:
    """Create the data directory up front: a path that cannot be one is the user's to fix, not a traceback."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StartupError(
            f"cannot create the data directory {data_dir} ({err.strerror or err}). Pass --data-dir DIR "
            "(or set ADVISOR_DATA_DIR) to a folder you can write."
        ) from None


def check_security(settings: Settings, ui: Any) -> list[str]:
    """Refuse an unauthenticated public bind; return the warnings to print for an authenticated one.

    The rule itself lives in `assistant.ui.launch_options` so that every way of launching the app obeys it.
    """
    try:
        ui.launch_options(settings)
    except ui.LaunchConfigError as err:
        raise StartupError(str(err)) from None
    if is_loopback_name(settings.host):
        return []
    return [
        f"WARNING: listening on {settings.host}, reachable from other machines. Anyone with the password "
        "can chat, run the tools and search the documents you added, and traffic is plain HTTP (not "
        "encrypted): use this only on a network you trust."
    ]


def _say(text: str) -> None:
    print(text, flush=True)


class _PullProgress:
    """Pull progress as plain lines, every 10% per layer: for logs and pipes, where a live bar is noise.

    (On a terminal _RichPullBars draws live bars instead.)
    """

    def __init__(self) -> None:
        self._last_pct: dict[str, int] = {}

    def __call__(self, event: PullProgress) -> None:
        if event.total:
            key = f"{event.model} {event.digest or event.status}"
            pct = int(100 * (event.completed or 0) / event.total)
            if pct < 100 and pct < self._last_pct.get(key, -10) + 10:
                return
            if self._last_pct.get(key) == pct:
                return
            self._last_pct[key] = pct
            done_gb, total_gb = (event.completed or 0) / 1e9, event.total / 1e9
            _say(f"  {event.model}: {event.status} {pct:3d}% ({done_gb:.2f}/{total_gb:.2f} GB)")
        elif event.status:
            _say(f"  {event.model}: {event.status}")


class _RichPullBars:
    """Pull progress as rich bars on stderr, one per layer being downloaded: for a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._progress.start()

    def __call__(self, event: PullProgress) -> None:
        if event.digest and event.total:
            task = self._tasks.get(event.digest)
            if task is None:
                label = f"{event.model} {event.digest.removeprefix('sha256:')[:12]}"
                task = self._progress.add_task(label, total=event.total)
                self._tasks[event.digest] = task
            self._progress.update(task, completed=event.completed or 0)
        elif event.status:
            self._progress.console.print(f"{event.model}: {event.status}")

    def close(self) -> None:
        self._progress.stop()


OLLAMA_ADVICE = (
    "install it from https://ollama.com (or `brew install ollama`), then open the Ollama app or run "
    "`ollama serve`; if it runs elsewhere, pass --ollama-host http://HOST:11434 (or set OLLAMA_HOST)."
)
OLLAMA_DEGRADED = (
    "Starting anyway: the Tools and Search tabs work now, and the chat connects by itself as soon as Ollama\n"
    "answers (the status line in the page turns green). Restart launch.py later to pull missing models."
)


def _ensure_models(layer: OllamaLayer, settings: Settings) -> EnsureReport:
    """Pull what is missing; a terminal gets rich progress bars, a log (no TTY) sparse text lines."""
    if not sys.stderr.isatty():
        return layer.ensure_models(settings.chat_model, settings.embed_model, progress=_PullProgress())
    bars = _RichPullBars()
    try:
        return layer.ensure_models(settings.chat_model, settings.embed_model, progress=bars)
    finally:
        bars.close()


def prepare(settings: Settings, *, pull: bool = True, add_docs: Sequence[Path] = ()) -> Services:
    """Check Ollama, ensure models, sync the index. Never fails for Ollama being absent: degrades instead."""
    from assistant.app_graph import build_services
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase

    layer = OllamaLayer(settings.ollama_host, timeout_s=settings.request_timeout_s)
    with OllamaLayer(settings.ollama_host, timeout_s=settings.probe_timeout_s) as probe:
        health = probe.health()
    if health.ok:
        _say(f"Ollama {health.version or ''} is running at {settings.ollama_host}.".replace("  ", " "))
        if pull:
            _say(f"Checking models ({settings.chat_model}, {settings.embed_model}) ...")
            try:
                ensured = _ensure_models(layer, settings)
                if ensured.pulled:
                    _say(f"  pulled: {', '.join(ensured.pulled)}")
                _say(f"  models ready: {settings.chat_model}, {settings.embed_model}")
            except Exception as exc:  # noqa: BLE001 - a failed pull must not stop the app; say what to do
                _say(
                    f"Could not pull the models: {exc}\n"
                    f"  Pull them by hand: `ollama pull {settings.chat_model}` and "
                    f"`ollama pull {settings.embed_model}`. Starting anyway."
                )
        else:
            _say("--no-pull: not pulling models; the status line in the page says if one is missing.")
    else:
        _say(f"Ollama is not answering at {settings.ollama_host}: {health.problem or 'no answer'}.")
        _say(f"  What to do: {health.advice or OLLAMA_ADVICE}")
        _say(OLLAMA_DEGRADED)

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Always give the index an embedder: when Ollama is down the sync says so and search stays lexical,
    # and the knowledge base retries by itself, so it becomes hybrid once Ollama is up.
    knowledge = KnowledgeBase(
        settings.data_dir,
        layer.embedder(settings.embed_model, query_timeout_s=settings.search_embed_timeout_s),
        progress=True,
        chroma_url=settings.chroma_url,
    )
    skip_vectors = None
    if not health.ok:
        # Embedding now would wait out the embedding timeout (30 s a batch) on an Ollama that does not answer.
        skip_vectors = f"Ollama was not usable at start-up ({health.problem or 'no answer'})."
        _say(
            f"Not waiting for Ollama's embedder ({settings.embed_model}): search starts with keywords only "
            "(BM25) and adds vector search by itself once Ollama answers."
        )
    if add_docs:
        _add_documents(knowledge, add_docs, skip_vectors)
    _say(f"Updating the knowledge index in {settings.data_dir} ...")
    report = knowledge.sync(skip_vectors=skip_vectors)
    _say(f"  {report.summary()}")
    # The layer is passed even when Ollama is down: its tools fail with clear messages until it is up, and
    # then work without a restart (measure_speed, installed-model resolution).
    services = build_services(settings, layer, knowledge)
    if health.ok:  # chosen now (once per model) so the terminal says which window the chat will use
        _say(f"Context window for {settings.chat_model}: {services.windows(settings.chat_model).reason}")
    return services


def _add_documents(knowledge: KnowledgeBase, paths: Sequence[Path], skip_vectors: str | None = None) -> None:
    from knowledge.documents import DocumentError

    _say(f"Adding {len(paths)} document path(s) ...")
    skipped: list[str] = []
    try:
        added = knowledge.add_documents(paths, skipped=skipped, skip_vectors=skip_vectors)
    except DocumentError as err:
        _say(f"  Could not add documents: {err}")
        return
    except Exception as err:  # noqa: BLE001 - a hostile document must never stop the app from starting
        _say(f"  Could not add documents ({type(err).__name__}: {err}); starting without them.")
        return
    for doc in added:
        _say(f"  + {doc.title} ({doc.kind}, {doc.chunks} chunks) from {doc.original_path}")
    for reason in skipped:
        _say(f"  skipped {reason}")


def build_ui(services: Services, ui: Any) -> Any:
    """The Gradio app wired to these services: the one wiring that `serve` and the tests both use."""
    return ui.build_app(
        services.settings,
        agent=services.agent,
        toolset=services.toolset,
        knowledge=services.knowledge,
        ollama=services.ollama,
    )


def serve(services: Services, ui: Any, *, open_browser: bool) -> int:
    """Launch the UI, print the URL, open the browser, and block until Ctrl-C / SIGTERM."""
    settings = services.settings
    _say("Building the page (chat, tools, search, documents) ...")
    app = build_ui(services, ui)
    options = ui.launch_options(settings)
    _say(f"Starting the web server on {settings.host}{f':{settings.port}' if settings.port else ''} ...")
    try:
        # gradio checks its own URL with httpx, which a SOCKS ALL_PROXY breaks. Both this and the NO_PROXY
        # entries launch_options adds are needed: NO_PROXY cannot help here (httpx fails to *build* a client
        # for a SOCKS proxy without socksio, whatever the host), and hiding the variables only lasts for
        # this call, while NO_PROXY keeps every later loopback request of the process off an HTTP proxy.
        with proxy_env.hidden():
            app.launch(**options)
    except OSError as err:
        print(
            f"error: could not listen on {settings.host}:{settings.port} ({err}). Another program (or "
            "another launch.py) probably uses that port: pass --port N, or --port 0 to pick a free one.",
            file=sys.stderr,
        )
        return 1
    stopping: list[int] = []

    def _on_signal(signum: int, _frame: Any) -> None:
        # Only a lock-free append here: a handler runs between bytecodes of the main thread, even inside
        # another handler, so taking a lock (threading.Event.set) deadlocks when Ctrl-C arrives twice.
        stopping.append(signum)

    # Installed before "ready" is printed, so a Ctrl-C that follows it at once still stops cleanly.
    # Explicit handlers: a process started in the background by a shell inherits SIGINT as *ignored*, and
    # Python would then never raise KeyboardInterrupt; SIGTERM is what service managers and tests send.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{app.server_port}/"
    _say(f"\nMac AI Advisor is ready: {url}\nPress Ctrl-C to stop.")
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    try:
        while not stopping:
            time.sleep(0.2)  # interrupted by a signal; the handler has run when it returns
    except KeyboardInterrupt:
        pass
    _say("\nStopping ...")
    app.close(verbose=False)
    services.close()
    _say("Stopped.")
    return 0


STARTING = "Starting Mac AI Advisor ..."


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not {"-h", "--help"} & set(argv):
        # The first line, before anything slow (pydantic, chromadb, gradio): the terminal answers at once.
        _say(STARTING)
    args = build_parser().parse_args(argv)
    _say("Loading the assistant (Ollama client, knowledge base, tools) ...")
    # Import what prepare() needs *before* gradio starts importing in the background: two threads importing
    # the same packages at once (numpy, via chromadb here and gradio there) can hand one of them a partially
    # initialised module ("cannot import name ... most likely due to a circular import").
    import assistant.agent
    import assistant.ollama
    import assistant.toolset  # noqa: F401
    import knowledge.search  # noqa: F401

    ui_thread = threading.Thread(target=_import_ui, name="import-ui", daemon=True)
    ui_thread.start()
    try:
        settings = settings_from_args(args)
        _make_data_dir(settings.data_dir)
        warnings: list[str] = []
        if settings.auth is not None or not is_loopback_name(settings.host):
            warnings = check_security(settings, _ui_module(ui_thread))
    except StartupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for w in warnings:
        print(w, file=sys.stderr)
    try:
        services = prepare(
            settings, pull=not getattr(args, "no_pull", False), add_docs=getattr(args, "add_docs", [])
        )
        ui = _ui_module(ui_thread, announce=True)
        return serve(services, ui, open_browser=not getattr(args, "no_browser", False))
    except KeyboardInterrupt:
        _say("\nInterrupted before the UI started; nothing to clean up.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
