"""The README's gradio_client snippet runs as written against the served app, and waits with a timeout."""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness import serve_app
from tests.ollama_standin import OllamaStandIn

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    (block,) = [b for b in blocks if "gradio_client" in b]
    return block


def test_readme_gradio_client_snippet_has_a_realistic_timeout_and_runs(
    standin: OllamaStandIn, tmp_path: Path
) -> None:
    code = _snippet()
    timeout = re.search(r"timeout=(\d+)", code)
    assert timeout is not None, "the snippet must not wait forever"
    assert int(timeout.group(1)) >= 300, "a cold model takes minutes to load: a short timeout is no better"
    standin.script_chat("It does not fit at 16k context.")
    with serve_app(standin.url, tmp_path) as app:
        namespace: dict[str, object] = {}
        exec(code.replace("http://127.0.0.1:7860/", app.url), namespace)  # noqa: S102 - our own README
    assert namespace["answer"] == "It does not fit at 16k context."
    assert isinstance(namespace["summary"], dict) and "error" not in namespace["summary"]
