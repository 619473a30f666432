"""Page hygiene without a browser: user text escaped, passages unwrapped with ranks, status wording after a
working chat, recommend_machine's summary, chart titles wrapped and transparent. (The browser test
tests/test_browser_conversations.py checks what the page then shows.)"""

from __future__ import annotations

from assistant.charts import TITLE_WRAP_CHARS, chart_for_tool_result
from assistant.config import Settings
from assistant.events import PassagesEvent
from assistant.ollama import OllamaLayer
from assistant.ui import (
    StatusProbe,
    TurnRenderer,
    result_markdown,
    search_markdown,
    status_markdown,
    unwrap_lines,
    user_markdown,
)
from knowledge.schemas import Passage
from tests.ollama_standin import OllamaStandIn
from tools import REGISTRY

WRAPPED = (
    "The article reports roughly half a year of daily local-AI work on Apple Silicon, using Ollama, MLX,\n"
    "llama.cpp, ComfyUI and Draw Things. Three machines were involved.\n\n"
    "Second paragraph that\nwraps too.\n- a list item\n- another"
)


def test_user_text_is_escaped_not_rendered() -> None:
    shown = user_markdown('<img src=x onerror="alert(1)"> <script>alert(2)</script> *x* [a](b)')
    assert "<" not in shown and ">" not in shown
    assert "&lt;img src=x" in shown and "&lt;script&gt;" in shown
    assert r"\*x\*" in shown and r"\[a\](b)" in shown


def test_passages_are_unwrapped_and_ranked_not_scored() -> None:
    assert unwrap_lines(WRAPPED) == [
        "The article reports roughly half a year of daily local-AI work on Apple Silicon, using Ollama, MLX, "
        "llama.cpp, ComfyUI and Draw Things. Three machines were involved.",
        "Second paragraph that wraps too.\n- a list item\n- another",
    ]
    passages = [
        Passage(id=f"p{i}", title=f"T{i}", section="S", source="src", text=WRAPPED, score=0.0328)
        for i in (1, 2)
    ]
    messages: list[dict[str, object]] = []
    TurnRenderer(messages).apply(PassagesEvent(passages=passages))
    text = str(messages[-1]["content"])
    assert "#1 · builtin" in text and "#2 · builtin" in text
    assert "0.033" not in text and "score" not in text
    assert "MLX, llama.cpp" in text  # the hard wrap is gone


def test_search_tab_shows_ranks_too() -> None:
    class _KB:
        def search(self, query: str, k: int) -> object:
            from knowledge.schemas import SearchKnowledgeOutput

            return SearchKnowledgeOutput(
                passages=[Passage(id="a", title="A", section="", source="s", text="x\ny", score=0.5)],
                mode="lexical",
                assumptions=[],
                sources=[],
            )

    out = search_markdown(_KB(), "q", 5)  # type: ignore[arg-type]
    assert "#1 ·" in out and "score" not in out
    # The same words as the status line ("knowledge search: keywords only"), and one passage is singular.
    assert "**1 passage** · knowledge search: keywords only" in out and "lexical" not in out.split("\n")[0]


def test_status_after_a_working_chat_says_ollama_stopped_answering(standin: OllamaStandIn) -> None:
    settings = Settings(ollama_host=standin.url)
    probe = StatusProbe(OllamaLayer(standin.url, timeout_s=60.0), standin.url, ttl_s=0.0)
    up = probe.status(force=True)
    assert up.ok and "hybrid" in status_markdown(up, settings, "hybrid")
    with standin.down():
        down = probe.status(force=True)
    assert not down.ok and down.was_ok
    text = status_markdown(down, settings, "hybrid")
    assert "stopped answering" in text and "not seem to be installed" not in text
    assert "hybrid" not in text and "keywords only" in text
    # A probe that never saw Ollama keeps the first-run advice.
    fresh = StatusProbe(OllamaLayer(standin.url, timeout_s=60.0), standin.url, ttl_s=0.0)
    with standin.down():
        never = fresh.status(force=True)
    assert not never.was_ok and "not reachable" in status_markdown(never, settings, None)


def test_recommend_machine_summary_names_machine_price_and_speed() -> None:
    result = REGISTRY.get("recommend_machine").run({"budget_usd": 1500}).model_dump(mode="json")
    text = result_markdown("recommend_machine", result)
    rec = result["recommendation"]
    assert f"**{rec['machine']}** — about ${rec['approx_price_usd']:,.0f} · ~" in text
    assert "tokens/s" in text.split("**Alternatives**")[0]
    wait = REGISTRY.get("recommend_machine").run({"budget_usd": 300}).model_dump(mode="json")
    assert "none: the advice is to wait" in result_markdown("recommend_machine", wait)


def test_chart_titles_are_wrapped_and_backgrounds_transparent() -> None:
    args = {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b", "context_tokens": 16384}
    result = REGISTRY.get("check_memory_fit").run(args).model_dump(mode="json")
    fig = chart_for_tool_result("check_memory_fit", args, result, REGISTRY)
    assert fig is not None
    lines = str(fig.layout.title.text).split("<br>")
    assert len(lines) >= 2 and all(len(line) <= TITLE_WRAP_CHARS for line in lines)
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)" and fig.layout.plot_bgcolor == "rgba(0,0,0,0)"
    # The RAM line sits near the right edge: its label must end at the line, not run off the plot.
    ram = [a for a in fig.layout.annotations if str(a.text).startswith("RAM")]
    assert ram and all(a.xanchor == "right" for a in ram)


def test_page_text_needs_no_cjk_font() -> None:
    """Fullwidth forms (U+FF00-FFEF, e.g. '＋') show as an empty box where no CJK font is installed, as on
    a stock Debian/Chromium: the page's own labels use plain characters."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "assistant"
    paths = [*sorted((root / "ui").rglob("*.py")), root / "charts.py"]
    assert len(paths) > 5, "the page's modules moved: point this test at them"
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in paths
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search("[\uff00-\uffef]", line)
    ]
    assert found == []
