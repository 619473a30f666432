"""UI logic without a browser: forms from schemas, turn rendering, charts, launch options, offline theme."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from assistant import events as ev
from assistant.config import Settings
from assistant.http_guard import is_loopback_name
from assistant.ollama import Health
from assistant.ui import (
    ChatSession,
    LaunchConfigError,
    TurnRenderer,
    arguments_from_form,
    build_app,
    context_meter_markdown,
    form_fields,
    launch_options,
    offline_theme,
    parse_auth,
    status_markdown,
)
from knowledge.schemas import Passage
from tests.harness import HANG_S
from tests.ollama_standin import OllamaStandIn
from tools import REGISTRY, CheckMemoryFitOutput, MemoryBreakdown, Registry, Tool, ToolError


# ------------------------------------------------------------------------------------------------ forms
class _Nested(BaseModel):
    a: int = Field(ge=1)
    b: str | None = None


class _Input(BaseModel):
    name: str = Field(description="a required name")
    chip: str | None = Field(default=None, description="optional text")
    cores: int | None = Field(default=None, ge=1, le=256)
    ratio: float = 0.5
    kind: Literal["x", "y"] = "x"
    flag: bool | None = None
    strict: bool = False
    nested: _Nested | None = None
    tags: list[str] = Field(default_factory=list)


class _Output(BaseModel):
    echo: dict[str, object]
    assumptions: list[str] = []
    sources: list[str] = []


def _echo(params: _Input) -> _Output:
    return _Output(echo=params.model_dump())


ECHO = Tool("echo", "Echo the arguments.", _Input, _Output, _echo)


def test_form_fields_follow_the_schema() -> None:
    specs = {s.name: s for s in form_fields(ECHO)}
    assert list(specs) == list(_Input.model_fields)
    assert specs["name"].kind == "text" and specs["name"].required
    assert specs["name"].info == "a required name"
    assert specs["chip"].kind == "text" and not specs["chip"].required
    assert specs["cores"].kind == "int" and specs["cores"].minimum == 1 and specs["cores"].maximum == 256
    assert specs["ratio"].kind == "float" and specs["ratio"].default == 0.5
    assert specs["kind"].kind == "choice" and specs["kind"].choices == ["x", "y"]
    assert specs["flag"].kind == "bool" and specs["strict"].kind == "bool"
    assert specs["nested"].kind == "json" and "a, b" in specs["nested"].info
    assert specs["tags"].kind == "list"


def test_arguments_from_form_drops_empties_and_parses() -> None:
    specs = form_fields(ECHO)
    values = ["n1", "  ", 8.0, None, "y", False, True, '{"a": 2}', "p, q,,r"]
    args = arguments_from_form(specs, values)
    assert args == {
        "name": "n1",
        "cores": 8,
        "kind": "y",
        "strict": True,
        "nested": {"a": 2},
        "tags": ["p", "q", "r"],
    }
    assert isinstance(args["cores"], int)
    out = ECHO.run(args)
    assert out.model_dump()["echo"]["nested"] == {"a": 2, "b": None}


def test_arguments_from_form_bad_json_names_the_field() -> None:
    specs = form_fields(ECHO)
    values = ["n", None, None, None, None, None, False, "{not json", ""]
    with pytest.raises(ToolError) as err:
        arguments_from_form(specs, values)
    assert "nested" in str(err.value) and err.value.fields == ["nested"]


def test_arguments_from_form_hostile_json_is_a_clear_error_not_a_traceback() -> None:
    specs = form_fields(ECHO)
    deep = ["n", None, None, None, None, None, False, "[" * 100_000 + "]" * 100_000, ""]
    with pytest.raises(ToolError, match="nested: not valid JSON") as err:
        arguments_from_form(specs, deep)
    assert err.value.fields == ["nested"]
    # a number too long for int() is read as JSON reads it elsewhere in the app (safe_json.loads), not a crash
    huge = ["n", None, None, None, None, None, False, '{"a": ' + "1" * 5000 + "}", ""]
    assert arguments_from_form(specs, huge)["nested"] == {"a": float("inf")}


def test_optional_numbers_come_as_text_and_bad_ones_are_named() -> None:
    specs = form_fields(ECHO)
    assert arguments_from_form(specs, ["n", None, "12", None, None, None, False, None, None])["cores"] == 12
    with pytest.raises(ToolError, match="cores: 'twelve' is not a number"):
        arguments_from_form(specs, ["n", None, "twelve", None, None, None, False, None, None])


def test_every_registered_tool_gets_a_form_whose_defaults_validate_or_explain() -> None:
    assert len(REGISTRY) >= 4, "tools.REGISTRY should hold the four public tools"
    for tool in REGISTRY:
        specs = form_fields(tool)
        assert [s.name for s in specs] == list(tool.input_model.model_fields)
        defaults = [s.default if s.kind != "json" else None for s in specs]
        args = arguments_from_form(specs, defaults)
        try:
            tool.validate(args)
        except ToolError as err:  # a required field left empty must be named, not crash
            assert str(err)


# ------------------------------------------------------------------------------------------------ rendering
def _passage(pid: str) -> Passage:
    return Passage(
        id=pid, title=f"Title {pid}", section="S", source="src.md", text="Bandwidth bounds decode.", score=0.5
    )


def test_turn_renderer_shows_tool_calls_passages_and_speed() -> None:
    messages: list[dict] = [{"role": "user", "content": "How fast?"}]
    charts: list[str] = []

    def chart_fn(name, arguments, result):  # type: ignore[no-untyped-def]
        charts.append(name)
        return {"figure": name}

    r = TurnRenderer(messages, Registry(), chart_fn)
    assert r.apply(ev.PassagesEvent(passages=[_passage("a"), _passage("b")]))
    assert r.apply(ev.ToolCallEvent(call_id="c1", name="estimate_speed", arguments={"chip": "M3 Max"}))
    tool_msg = messages[-1]
    assert tool_msg["metadata"]["status"] == "pending" and "M3 Max" in tool_msg["content"]
    assert r.apply(ev.ToolResultEvent(call_id="c1", name="estimate_speed", result={"x": 1}, duration_ms=3))
    assert tool_msg["metadata"]["status"] == "done" and '"x": 1' in tool_msg["content"]
    assert charts == ["estimate_speed"] and r.chart == {"figure": "estimate_speed"}
    assert r.apply(ev.ToolCallEvent(call_id="c2", name="check_memory_fit", arguments={}))
    assert r.apply(ev.ToolErrorEvent(call_id="c2", name="check_memory_fit", error="chip: unknown 'M9'"))
    assert "unknown 'M9'" in messages[-1]["content"] and messages[-1]["metadata"]["status"] == "done"
    assert r.apply(ev.TokenEvent(text="About "))  # first token opens a bubble
    assert not r.apply(ev.TokenEvent(text="40 tok/s [p:a]."))  # later tokens are batched
    r.apply(
        ev.DoneEvent(content="About 40 tok/s [p:a].", eval_count=12, tokens_per_second=41.5, citations=["a"])
    )
    answer = messages[-1]
    assert answer["content"].startswith("About 40 tok/s [p:a].") and "41.5 tokens/s" in answer["content"]
    sources = messages[1]
    assert "1 cited" in sources["metadata"]["title"] and "✅ cited" in sources["content"]
    assert sources["content"].count("✅") == 1
    assert r.answer_text == "About 40 tok/s [p:a]."
    assert [(c["name"], c["ok"]) for c in r.tool_calls] == [
        ("estimate_speed", True),
        ("check_memory_fit", False),
    ]
    assert r.tool_calls[1]["error"] == "chip: unknown 'M9'"


def test_turn_renderer_lists_passages_found_by_search_knowledge_in_the_same_message() -> None:
    messages: list[dict] = [{"role": "user", "content": "q"}]
    r = TurnRenderer(messages, Registry(), None)
    r.apply(ev.PassagesEvent(passages=[_passage("a")]))
    r.apply(ev.ToolCallEvent(call_id="c1", name="search_knowledge", arguments={"query": "x"}))
    r.apply(ev.ToolResultEvent(call_id="c1", name="search_knowledge", result={}, duration_ms=1))
    r.apply(ev.PassagesEvent(passages=[_passage("a"), _passage("b")], origin="search_knowledge"))
    r.apply(ev.DoneEvent(content="See [p:b].", citations=["b"]))
    sources = messages[1]
    assert "2 passages" in sources["metadata"]["title"] and "1 cited" in sources["metadata"]["title"]
    assert (
        sources["content"].count("✅") == 1
        and len([m for m in messages if "📚" in str(m.get("metadata"))]) == 1
    )


def test_turn_renderer_text_after_tool_is_a_new_bubble_and_errors_show() -> None:
    messages: list[dict] = []
    r = TurnRenderer(messages)
    r.apply(ev.TokenEvent(text="Let me check."))
    r.apply(ev.ToolCallEvent(call_id="c", name="lookup_benchmarks", arguments={}))
    r.apply(ev.TokenEvent(text="Done."))
    r.apply(ev.NoticeEvent(text="History trimmed."))
    r.apply(ev.ErrorEvent(message="Ollama is not running.", kind="unavailable"))
    contents = [m["content"] for m in messages]
    assert contents[0] == "Let me check." and contents[2] == "Done."
    assert messages[3]["metadata"]["title"].endswith("Note")
    assert contents[-1] == "⚠️ Ollama is not running."


def test_left_out_context_is_said_in_plain_sight_and_meter_figures_do_not_split_the_answer() -> None:
    messages: list[dict] = []
    r = TurnRenderer(messages)
    meter = ev.ContextEvent(used_tokens=6000, window_tokens=8192, reserved_tokens=1024, reason="auto: 8,192")
    assert not r.apply(meter)  # figures for the meter, not a message
    r.apply(ev.NoticeEvent(text="Left out of this request: 2 earlier answer(s).", kind="context_dropped"))
    r.apply(ev.TokenEvent(text="About "))
    r.apply(ev.ContextEvent(used_tokens=6100, window_tokens=8192))
    r.apply(ev.TokenEvent(text="40 tok/s."))
    assert messages[0] == {"role": "assistant", "content": "✂️ Left out of this request: 2 earlier answer(s)."}
    assert "metadata" not in messages[0]  # not a folded note
    assert messages[1]["content"] == "About 40 tok/s." and len(messages) == 2
    assert r.context is not None and r.context.used_tokens == 6100


def test_context_meter_shows_used_over_window_and_how_it_was_chosen() -> None:
    assert "chosen for the model at the first message" in context_meter_markdown(None, Settings())
    assert "12,288 tokens" in context_meter_markdown(None, Settings(num_ctx=12288))
    # A conversation reopened after a reload: its figures come with the next message, said once.
    reopened = context_meter_markdown(None, Settings(), reopened=True)
    assert reopened == "**Context** — measured again at the next message"
    assert "window: 12,288 tokens · measured again" in context_meter_markdown(
        None, Settings(num_ctx=12288), reopened=True
    )
    event = ev.ContextEvent(
        used_tokens=4096,
        window_tokens=8192,
        reserved_tokens=1024,
        reason="auto: 8,192 tokens, the fallback (no Mac to size it against here)",
        tools=["estimate_speed", "check_memory_fit"],
    )
    text = context_meter_markdown(event, Settings())
    assert "4,096 / 8,192 tokens (50%)" in text and "█" * 10 + "░" * 10 in text
    assert "the fallback" in text and "2 tool(s) sent" in text and "1,024 kept for the answer" in text


def test_done_without_text_still_gets_a_stats_line() -> None:
    messages: list[dict] = []
    r = TurnRenderer(messages)
    r.apply(ev.ToolCallEvent(call_id="c", name="x", arguments={}))
    r.apply(ev.DoneEvent(content="", eval_count=0, tokens_per_second=None))
    assert "tokens/s n/a" in messages[-1]["content"] and not messages[-1].get("metadata")


# ------------------------------------------------------------------------------------------------ charts
def _fit_result(total: float = 50.0, budget: float = 36.0) -> dict:
    return CheckMemoryFitOutput(
        verdict="does_not_fit" if total > budget else "fits",
        fits_on_gpu=total <= budget,
        chip="M4 Pro",
        memory_gb=48,
        model="llama3.3:70b",
        params_billion=70.6,
        quant="Q4_K_M",
        bits_per_weight=4.85,
        context_tokens=16384,
        kv_cache_type="f16",
        parallel=1,
        breakdown=MemoryBreakdown(
            weights_gb=total - 7,
            kv_cache_gb=5.0,
            overhead_gb=2.0,
            total_gb=total,
            gpu_budget_gb=budget,
            headroom_gb=budget - total,
            ram_gb=48,
            os_headroom_gb=6,
        ),
        max_context_tokens=0,
        suggestions=[],
        assumptions=[],
        sources=[],
    ).model_dump(mode="json")


def test_memory_fit_figure_stacks_against_budget() -> None:
    from assistant.charts import memory_fit_figure

    fig = memory_fit_figure(_fit_result())
    assert fig is not None
    assert [round(t.x[0], 1) for t in fig.data] == [43.0, 5.0, 2.0]
    shapes = [s.x0 for s in fig.layout.shapes]
    assert 36.0 in shapes and 48 in shapes
    assert "does not fit" in fig.layout.title.text
    assert memory_fit_figure({"unexpected": True}) is None


def test_speed_chart_compares_every_chip_with_real_tool() -> None:
    from assistant.charts import chart_for_tool_result

    if "estimate_speed" not in REGISTRY:
        pytest.fail("estimate_speed is not registered in tools.REGISTRY")
    args = {"chip": "M3 Max", "model": "qwen2.5:32b"}
    result = REGISTRY.get("estimate_speed").run(args).model_dump(mode="json")
    fig = chart_for_tool_result("estimate_speed", args, result, REGISTRY)
    assert fig is not None
    chips = next(t for t in fig.data if t.name == "Apple Silicon chips")
    assert len(chips.x) >= 15
    assert list(chips.x) == sorted(chips.x)  # speed vs bandwidth, ordered by bandwidth
    asked = fig.data[-1]
    assert asked.x[0] == result["bandwidth_gbps"] and asked.y[0] == result["expected_tokens_per_second"]
    ceiling = next(t for t in fig.data if t.name == "bandwidth ceiling")
    assert all(c >= e for c, e in zip(ceiling.y, chips.y, strict=True))


# ------------------------------------------------------------------------------------------------ security
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_name(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback_name(host)


def test_launch_options_loopback_defaults_are_safe() -> None:
    opts = launch_options(Settings(host="127.0.0.1", port=0))
    assert opts["share"] is False and opts["auth"] is None and opts["server_name"] == "127.0.0.1"
    assert opts["mcp_server"] is False and opts["ssr_mode"] is False


def test_public_bind_without_auth_is_refused() -> None:
    with pytest.raises(LaunchConfigError, match="--auth"):
        launch_options(Settings(host="0.0.0.0", auth=None))


def test_public_bind_with_auth_is_allowed_and_never_shared() -> None:
    opts = launch_options(Settings(host="0.0.0.0", auth="ann:s3:cret-long-enough"))
    assert opts["auth"] == ("ann", "s3:cret-long-enough") and opts["share"] is False


@pytest.mark.parametrize("bad", ["nocolon", ":pass", "user:", " :x"])
def test_malformed_auth_is_refused(bad: str) -> None:
    with pytest.raises(LaunchConfigError, match="user:password"):
        parse_auth(bad)


# ------------------------------------------------------------------------------------------------ offline
def test_theme_uses_no_web_fonts() -> None:
    from gradio.themes.utils.fonts import GoogleFont, LocalFont

    theme = offline_theme()
    fonts = list(theme._font) + list(theme._font_mono)
    assert fonts and not any(isinstance(f, GoogleFont | LocalFont) for f in fonts)
    css = theme._get_theme_css()
    assert "googleapis" not in css and "@import" not in css


def test_status_markdown_explains_absent_ollama() -> None:
    s = Settings()
    down = status_markdown(Health(ok=False, host=s.ollama_host, problem="connection refused"), s, None)
    assert "not reachable" in down and "ollama.com" in down and "by itself" in down
    up = status_markdown(Health(ok=True, host=s.ollama_host, version="0.9.0", chat_models=[]), s, "hybrid")
    assert f"ollama pull {s.chat_model}" in up and "hybrid" in up


def test_build_app_without_ollama_has_forms_search_and_chat_api() -> None:
    app = build_app(Settings(), agent=None, toolset=REGISTRY, knowledge=None, ollama=None)
    config = app.get_config_file()
    api_names = {d.get("api_name") for d in config["dependencies"]}
    assert "chat" in api_names and "search_knowledge" in api_names
    elem_ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    for tool in REGISTRY:
        assert f"run-{tool.name}" in elem_ids
    assert "ollama-status" in elem_ids and "chatbot" in elem_ids and "context-meter" in elem_ids
    assert app.analytics_enabled is False
    assert json.dumps(config, default=str).count("fonts.googleapis") == 0


def test_chat_session_default_is_empty() -> None:
    s = ChatSession()
    assert s.conversation is None and s.messages == [] and s.turns == 0


def test_tools_tab_runs_through_the_shared_run_tool_and_never_shows_a_traceback() -> None:
    """The Tools tab's Run button: a result with its summary; a form value the tool refuses, a tool bug and a
    bad number each come back as one ⚠️ line (the same sentence the chat and MCP give), never a traceback."""
    from assistant.ui.forms import form_fields, run_form

    class Nothing(BaseModel):
        pass

    def explode(params: Nothing) -> Nothing:
        raise RuntimeError("a bug")

    broken = Tool(name="broken", description="d", input_model=Nothing, output_model=Nothing, func=explode)
    registry = REGISTRY.extended(broken)
    speed = registry.get("estimate_speed")
    specs = form_fields(speed)
    values = {s.name: None for s in specs} | {"chip": "M3 Max", "model": "qwen2.5:7b"}
    summary, _, result = run_form(speed, registry, specs, [values[s.name] for s in specs])
    assert result is not None and result["expected_tokens_per_second"] > 0
    assert "expected tokens per second" in summary
    refused = values | {"chip": "M9 Hyper"}
    summary, _, result = run_form(speed, registry, specs, [refused[s.name] for s in specs])
    assert result is None and summary.startswith("⚠️ ") and "chip" in summary and "Traceback" not in summary
    summary, _, result = run_form(broken, registry, [], [])
    assert (summary, result) == ("⚠️ broken failed internally (RuntimeError: a bug)", None)


def test_measure_speed_form_summary_shows_the_measured_speed_and_no_none(standin: OllamaStandIn) -> None:
    """The Tools tab's measure_speed: the summary leads with the figure it measured, and a figure the tool
    could not give (no estimate off a Mac) is left out rather than printed as "None"."""
    from assistant.ollama import OllamaLayer
    from assistant.toolset import build_toolset
    from assistant.ui.forms import form_fields, run_form

    with OllamaLayer(standin.url, timeout_s=HANG_S) as layer:
        registry = build_toolset(None, layer, num_ctx=8192)
        tool = registry.get("measure_speed")
        specs = form_fields(tool)
        values = ["qwen2.5:7b" if s.name == "model" else None for s in specs]
        summary, _, result = run_form(tool, registry, specs, values)
    assert result is not None and result["measured_tokens_per_second"] > 0
    assert f"measured tokens per second: **{result['measured_tokens_per_second']}**" in summary
    assert "None" not in summary
