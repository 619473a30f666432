"""Context that lasts: a long tool-using conversation keeps every user question in what goes to Ollama.

Agent-level tests run through the real `ollama` client against the protocol-level stand-in and assert on the
requests it recorded; the num_ctx choice uses the project's own memory fit (`check_memory_fit`), the tool
selection is checked against every question of the evaluation set, and the summaries against real tool
outputs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from assistant.agent import Agent
from assistant.config import Settings
from assistant.context_budget import SUMMARY_PREFIX, summarise_tool_result
from assistant.context_window import (
    CORE_TOOLS,
    FALLBACK_NUM_CTX,
    choose_num_ctx,
    recently_used_tools,
    select_tools,
)
from assistant.eval import load_questions
from assistant.events import AgentEvent, ContextEvent, DoneEvent, NoticeEvent, PassagesEvent
from assistant.ollama import OllamaLayer
from assistant.toolset import build_toolset
from knowledge.search import KnowledgeBase
from tests.agent_support import make_agent
from tests.ollama_standin import QWEN25_7B, ChatScript, OllamaStandIn, RecordedRequest, ToolCallScript
from tools import REGISTRY


@pytest.fixture(scope="module")
def shipped_knowledge(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The shipped passages, lexical only (no embedder): the default top-4 retrieval of a real install."""
    kb = KnowledgeBase(tmp_path_factory.mktemp("kb"), None)
    kb.sync()
    yield kb
    kb.close()


# A realistic 12-turn conversation: every turn calls a tool (the model's usual first move), then answers
# with a few sentences. The last question is a follow-up that only makes sense with the one before it.
FIT_70B = {"chip": "M4 Pro", "memory_gb": 48, "model": "llama3.3:70b", "context_tokens": 16384}
CONVERSATION: list[tuple[str, str, dict[str, Any]]] = [
    (
        "How fast would qwen2.5:32b run on an M3 Max with the 40-core GPU?",
        "estimate_speed",
        {"chip": "M3 Max", "gpu_cores": 40, "model": "qwen2.5:32b"},
    ),
    (
        "Will qwen2.5:32b fit in 36 GB on that M3 Max with a 16k context?",
        "check_memory_fit",
        {"chip": "M3 Max", "memory_gb": 36, "model": "qwen2.5:32b", "context_tokens": 16384},
    ),
    (
        "What did the article measure on the M4 Pro Mac mini?",
        "lookup_benchmarks",
        {"machine": "m4 pro"},
    ),
    ("I have $2000. Which Mac should I buy for local LLMs?", "recommend_machine", {"budget_usd": 2000}),
    (
        "Why does memory bandwidth decide decode speed?",
        "search_knowledge",
        {"query": "memory bandwidth decode speed"},
    ),
    (
        "How many tokens per second for llama3.1:8b on a plain M4?",
        "estimate_speed",
        {"chip": "M4", "model": "llama3.1:8b"},
    ),
    (
        "What is the largest context I can use with llama3.1:8b on a 24 GB M4 Pro?",
        "check_memory_fit",
        {"chip": "M4 Pro", "memory_gb": 24, "model": "llama3.1:8b", "context_tokens": 8192},
    ),
    (
        "How long did SDXL take per image on the M4 Pro Mac mini in the article?",
        "lookup_benchmarks",
        {"model": "sdxl", "kind": "image"},
    ),
    ("Which Mac for 70B models with a $5000 budget?", "recommend_machine", {"budget_usd": 5000}),
    (
        "How do I raise the GPU memory limit on macOS?",
        "search_knowledge",
        {"query": "raise GPU memory limit wired"},
    ),
    ("Will llama3.3:70b fit on a 48 GB M4 Pro with 16k context?", "check_memory_fit", FIT_70B),
    ("And with 32k context instead?", "check_memory_fit", {**FIT_70B, "context_tokens": 32768}),
]

FIT_70B_QUESTION = CONVERSATION[10][0]

ANSWER = (
    "Based on the tool's numbers, {q} The estimate rests on the memory bandwidth of the chip and the size of "
    "the quantised weights; the expected range covers the spread of public measurements, and the ceiling "
    "is the physical upper bound. Longer contexts read more of the KV cache per token, so the figure drops "
    "a little as the conversation grows. If you need more headroom, a smaller quantisation such as Q3_K_M "
    "or a shorter context helps, and raising the GPU wired limit is possible but leaves less memory for "
    "macOS itself. [p:x]"
)


def _responder(request: RecordedRequest) -> ChatScript:
    """Tool call first (per the current question), then a realistic answer once the result is in."""
    messages = request.messages
    question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    if messages[-1]["role"] == "tool":
        return ChatScript(text=ANSWER.format(q=question.lower()))
    _, tool, arguments = next(c for c in CONVERSATION if c[0] == question)
    return ChatScript(tool_calls=(ToolCallScript(tool, arguments),))


def test_twelve_tool_using_turns_at_default_settings_keep_every_user_question(
    standin: OllamaStandIn, shipped_knowledge: KnowledgeBase
) -> None:
    standin.chat_responder = _responder
    agent = make_agent(standin, shipped_knowledge)  # default settings: num_ctx auto, top-4 passages
    conversation = agent.new_conversation()
    asked: list[str] = []
    turn_events: list[list[AgentEvent]] = []
    for question, tool, _ in CONVERSATION:
        standin.clear_requests()
        events = list(conversation.turn(question))
        assert isinstance(events[-1], DoneEvent), events[-1]
        asked.append(question)
        turn_events.append(events)
        requests = standin.chat_requests()
        assert len(requests) == 2  # the tool round and the answer
        for request in requests:
            users = [m["content"] for m in request.messages if m["role"] == "user"]
            assert users == asked, f"turn {len(asked)} left out a question"
            assert request.options["num_ctx"] == FALLBACK_NUM_CTX  # auto, off a Mac
            assert tool in {t["function"]["name"] for t in request.tools}
            sent = sum(
                len(m.get("content", "")) + len(json.dumps(m.get("tool_calls", ""))) for m in request.messages
            )
            sent += len(json.dumps(request.tools))
            assert sent / 3.0 < FALLBACK_NUM_CTX - 1024, len(asked)  # in the window, answer reserve free
        tools = [m for m in requests[1].messages if m["role"] == "tool"]
        assert not tools[-1]["content"].startswith(SUMMARY_PREFIX)  # this turn's result in full
        assert all(t["content"].startswith(SUMMARY_PREFIX) for t in tools[:-1])  # earlier ones summarised

    # The follow-up went out with the question it refers to, and that question's (summarised) tool result.
    last = standin.chat_requests()[0].messages
    follow_up = next(i for i, m in enumerate(last) if m.get("content") == "And with 32k context instead?")
    previous_user = [m for m in last[:follow_up] if m["role"] == "user"][-1]
    assert previous_user["content"] == "Will llama3.3:70b fit on a 48 GB M4 Pro with 16k context?"
    between = last[last.index(previous_user) : follow_up]
    assert any(m["role"] == "tool" and '"context_tokens":16384' in m["content"] for m in between)

    # Passages from earlier turns are not resent: the system message holds only this turn's passages and
    # the earlier search_knowledge results are summaries without the passage texts.
    final_passages = [e for e in turn_events[-1] if isinstance(e, PassagesEvent)]
    shown_now = {p.id for e in final_passages for p in e.passages}
    system = last[0]["content"]
    earlier = {
        p.id for ev in turn_events[:-1] for e in ev if isinstance(e, PassagesEvent) for p in e.passages
    }
    assert all(f"[p:{pid}]" not in system for pid in earlier - shown_now)
    for m in last:
        if m["role"] == "tool" and m.get("tool_name") == "search_knowledge":
            assert '"text"' not in m["content"] and len(m["content"]) < 1000

    # Each turn reported its context figures; when something had to go, the user was told plainly.
    for events in turn_events:
        meters = [e for e in events if isinstance(e, ContextEvent)]
        assert len(meters) == 2 and all(0 < e.used_tokens <= e.window_tokens for e in meters)
        dropped = [e for e in events if isinstance(e, NoticeEvent) and e.kind == "context_dropped"]
        if dropped:
            assert (
                "All" in dropped[0].text and "of your earlier questions are still included" in dropped[0].text
            )


# ------------------------------------------------------------------------------------------------ summaries
SUMMARY_CASES = [
    (
        "estimate_speed",
        {"chip": "M3 Max", "gpu_cores": 40, "model": "qwen2.5:32b"},
        "expected_tokens_per_second",
    ),
    ("check_memory_fit", FIT_70B, "verdict"),
    ("lookup_benchmarks", {"query": "m4 pro"}, "result"),
    ("recommend_machine", {"budget_usd": 1500}, "approx_price_usd"),
]


@pytest.mark.parametrize(("name", "arguments", "key"), SUMMARY_CASES)
def test_summary_of_a_real_tool_result_is_small_valid_json_with_the_key_numbers(
    name: str, arguments: dict[str, Any], key: str
) -> None:
    data = REGISTRY.get(name).run(arguments).model_dump(mode="json")
    full = json.dumps(data, separators=(",", ":"))
    summary = summarise_tool_result(name, data)
    assert summary.startswith(SUMMARY_PREFIX)
    parsed = json.loads(summary.removeprefix(SUMMARY_PREFIX))
    assert len(summary) * 2.5 < len(full)  # at most 40% of the full JSON (typically 15-20%)
    assert f'"{key}"' in summary and "assumptions" not in parsed and "sources" not in parsed
    if name == "check_memory_fit":
        assert (
            parsed["verdict"] == data["verdict"]
            and parsed["breakdown"]["total_gb"] == data["breakdown"]["total_gb"]
        )
        assert parsed["max_context_tokens"] == data["max_context_tokens"]
    if name == "estimate_speed":
        assert parsed["expected_range"] == data["expected_range"]


def test_summary_of_passages_keeps_ids_not_texts_and_unknown_tools_get_a_generic_one() -> None:
    passages = {
        "passages": [
            {"id": f"p{i}", "title": f"T{i}", "text": "long body " * 100, "score": 0.5} for i in range(3)
        ]
    }
    summary = summarise_tool_result("search_knowledge", passages)
    assert "long body" not in summary and '"id":"p2"' in summary and '"title":"T0"' in summary
    generic = summarise_tool_result(
        "new_tool", {"answer": 42, "assumptions": ["x" * 500], "rows": [{"a": i} for i in range(50)]}
    )
    parsed = json.loads(generic.removeprefix(SUMMARY_PREFIX))
    assert parsed["answer"] == 42 and "assumptions" not in parsed and len(generic) < 400


# ----------------------------------------------------------------------------------------- tool selection
def test_every_evaluation_question_is_sent_every_tool_that_counts_as_right() -> None:
    names = {"estimate_speed", "check_memory_fit", "lookup_benchmarks", "recommend_machine"}
    names |= {"search_knowledge", "measure_speed"}
    questions = load_questions()
    assert len(questions) >= 14
    for q in questions:
        expected = {t for t in q.expected_tools if t}
        chosen = select_tools(q.question, names)
        assert expected <= chosen, (q.id, expected - chosen)


@pytest.mark.parametrize(
    ("question", "wanted"),
    [
        ("Can you measure how fast llama3.1:8b really runs on my Mac?", "measure_speed"),
        ("Is the M4 Max worth it over the M4 Pro?", "recommend_machine"),
        ("What's a good Mac under $1200?", "recommend_machine"),
        ("How long does Flux take per image on a Mac Studio?", "lookup_benchmarks"),
        ("qwen2.5:14b vs llama3.1:8b tokens/s on an M3 Pro?", "lookup_benchmarks"),
        ("please run lookup_benchmarks for the mac mini", "lookup_benchmarks"),
    ],
)
def test_questions_about_an_optional_tool_get_it(question: str, wanted: str) -> None:
    assert wanted in select_tools(question, [*CORE_TOOLS, wanted])


def test_a_follow_up_keeps_the_tools_of_the_last_two_turns_and_unknown_tools_are_always_sent() -> None:
    available = [*CORE_TOOLS, "lookup_benchmarks", "recommend_machine", "measure_speed", "new_tool"]
    fit_only = select_tools("Will llama3.3:70b fit on a 48 GB M4 Pro with 16k context?", available)
    assert fit_only == CORE_TOOLS | {"new_tool"}  # a fit question needs neither shopping nor measuring
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "I have $1500, which Mac?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "recommend_machine"}}]},
        {"role": "tool", "content": "{}", "tool_name": "recommend_machine"},
        {"role": "assistant", "content": "The M4 Pro mini."},
    ]
    assert recently_used_tools(history) == {"recommend_machine"}
    assert "recommend_machine" in select_tools(
        "and with 64 GB instead?", available, recently_used_tools(history)
    )


def test_a_turn_is_sent_only_its_tools_and_a_follow_up_gets_the_previous_ones(standin: OllamaStandIn) -> None:
    budget = {"budget_usd": 1500}
    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("recommend_machine", budget),)),
        "The M4 Pro Mac mini.",
        ChatScript(tool_calls=(ToolCallScript("recommend_machine", {"budget_usd": 3000}),)),
        "The M4 Max.",
        "It fits.",
    )
    conversation = make_agent(standin).new_conversation()
    for text in (
        "I have $1500, which Mac should I buy?",
        "and for twice that?",
        "Will qwen2.5:7b fit in 16 GB?",
    ):
        assert isinstance(list(conversation.turn(text))[-1], DoneEvent)
    sent = [{t["function"]["name"] for t in r.tools} for r in standin.chat_requests()]
    assert "recommend_machine" in sent[0] and "measure_speed" not in sent[0]
    assert "recommend_machine" in sent[2]  # a follow-up without buying words still gets the shopping tool
    assert sent[4] == {"estimate_speed", "check_memory_fit", "recommend_machine"}  # used one turn ago


# --------------------------------------------------------------------------------------------- num_ctx
def test_auto_num_ctx_is_the_largest_fit_within_the_trained_length_and_the_cap() -> None:
    fit = REGISTRY.get("check_memory_fit")
    big = {"chip": "M4 Max", "memory_gb": 128}
    window = choose_num_ctx(fit, "qwen2.5:7b", trained_context=32768, max_num_ctx=262144, machine=big)
    assert window.num_ctx == 32768 and window.auto and "trained length 32,768" in window.reason
    window = choose_num_ctx(fit, "llama3.1:8b", trained_context=131072, max_num_ctx=262144, machine=big)
    assert window.num_ctx == 131072  # 128 GB holds its whole trained length
    window = choose_num_ctx(fit, "llama3.1:8b", trained_context=131072, max_num_ctx=32768, machine=big)
    assert window.num_ctx == 32768 and "ADVISOR_MAX_NUM_CTX=32,768" in window.reason
    # 16 GB: the fit checker's own largest context, rounded down to a multiple of 1024
    small = {"chip": "M4", "memory_gb": 16}
    fit_out = REGISTRY.get("check_memory_fit").run({**small, "model": "llama3.1:8b"}).model_dump()
    expected = fit_out["max_context_tokens"]
    window = choose_num_ctx(fit, "llama3.1:8b", trained_context=131072, max_num_ctx=262144, machine=small)
    assert 16384 < window.num_ctx <= expected < 131072 and window.num_ctx == expected // 1024 * 1024
    # less than the assistant needs fits next to the weights: the floor, and the reason says so
    candidates = [("qwen2.5:14b", small), ("gemma2:27b", {"chip": "M4 Pro", "memory_gb": 24})]
    tight = [
        (model, machine)
        for model, machine in candidates
        if 0 < fit.run({**machine, "model": model}).model_dump()["max_context_tokens"] < FALLBACK_NUM_CTX
    ]
    assert tight, "no candidate leaves less than 8k next to its weights any more: pick another"
    model, machine = tight[0]
    window = choose_num_ctx(fit, model, trained_context=8192, max_num_ctx=32768, machine=machine)
    assert window.num_ctx == FALLBACK_NUM_CTX and "smallest window the assistant works with" in window.reason
    # weights that do not fit at all: no larger window than the fallback, and the reason says why
    window = choose_num_ctx(
        fit, "llama3.3:70b", trained_context=131072, max_num_ctx=32768, machine={"chip": "M1", "memory_gb": 8}
    )
    assert window.num_ctx == FALLBACK_NUM_CTX and "exceed the GPU budget" in window.reason
    # a model trained on less than the fallback gets its trained length
    window = choose_num_ctx(fit, "qwen2.5:7b", trained_context=4096, max_num_ctx=32768, machine=big)
    assert window.num_ctx == 4096


def test_auto_num_ctx_off_a_mac_falls_back_to_8192_and_says_so(standin: OllamaStandIn) -> None:
    standin.script_chat("hi")
    events = list(make_agent(standin).new_conversation().turn("hello"))
    (meter,) = [e for e in events if isinstance(e, ContextEvent)]
    assert meter.window_tokens == FALLBACK_NUM_CTX == standin.last_chat_request().options["num_ctx"]
    assert meter.auto and "fallback" in meter.reason
    assert isinstance(events[-1], DoneEvent) and events[-1].num_ctx == FALLBACK_NUM_CTX


def test_auto_num_ctx_uses_the_machine_fit_and_the_trained_length_from_api_show(
    standin: OllamaStandIn,
) -> None:
    standin.set_models(dataclasses.replace(QWEN25_7B, context_length=20480))
    standin.script_chat("one", "two")
    agent = make_agent(standin, machine={"chip": "M4 Max", "memory_gb": 128})
    conversation = agent.new_conversation()
    list(conversation.turn("hello"))
    list(conversation.turn("again"))
    assert [r.options["num_ctx"] for r in standin.chat_requests()] == [20480, 20480]
    assert len(standin.requests_to("/api/show")) == 1  # chosen once per model, not per turn


def test_explicit_num_ctx_wins_over_auto(standin: OllamaStandIn) -> None:
    standin.script_chat("hi")
    agent = make_agent(standin, machine={"chip": "M4 Max", "memory_gb": 128}, num_ctx=12288)
    events = list(agent.new_conversation().turn("hello"))
    assert standin.last_chat_request().options["num_ctx"] == 12288
    (meter,) = [e for e in events if isinstance(e, ContextEvent)]
    assert not meter.auto and meter.window_tokens == 12288 and "set" in meter.reason
    assert standin.requests_to("/api/show") == []  # nothing to look up


def test_auto_num_ctx_is_retried_when_ollama_was_down(standin: OllamaStandIn) -> None:
    agent = make_agent(standin, machine={"chip": "M4 Max", "memory_gb": 128})
    conversation = agent.new_conversation()
    with standin.down():
        list(conversation.turn("while down"))
    standin.script_chat("back")
    list(conversation.turn("now"))
    assert standin.last_chat_request().options["num_ctx"] == 32768  # qwen2.5:7b's trained length


def test_settings_accept_auto_or_a_number_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().num_ctx == "auto" and Settings().max_num_ctx == 32768
    monkeypatch.setenv("ADVISOR_NUM_CTX", "16384")
    monkeypatch.setenv("ADVISOR_MAX_NUM_CTX", "65536")
    assert Settings().num_ctx == 16384 and Settings().max_num_ctx == 65536
    monkeypatch.setenv("ADVISOR_NUM_CTX", "auto")
    assert Settings().num_ctx == "auto"


def test_launch_flags_take_auto_or_a_number_and_prepare_says_which_window(
    standin: OllamaStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import launch

    parse = launch.build_parser().parse_args
    assert launch.settings_from_args(parse(["--num-ctx", "auto"])).num_ctx == "auto"
    settings = launch.settings_from_args(parse(["--num-ctx", "16384", "--max-num-ctx", "65536"]))
    assert (settings.num_ctx, settings.max_num_ctx) == (16384, 65536)
    with pytest.raises(
        launch.StartupError,
        match=r"--num-ctx: expected a number of tokens \(1024 to 262144\) or 'auto', got 100",
    ):
        launch.settings_from_args(parse(["--num-ctx", "100"]))
    with pytest.raises(SystemExit):
        parse(["--num-ctx", "big"])
    assert "expected a number of tokens or 'auto'" in capsys.readouterr().err

    services = launch.prepare(Settings(ollama_host=standin.url, data_dir=tmp_path), pull=False)
    try:
        out = capsys.readouterr().out
        assert "Context window for qwen2.5:7b: auto: 8,192 tokens, the fallback" in out
    finally:
        services.knowledge.close()


def test_chat_api_summary_carries_the_context_figures(standin: OllamaStandIn, tmp_path: Path) -> None:
    from tests.harness import chat_client, serve_app

    standin.script_chat(
        ChatScript(tool_calls=(ToolCallScript("check_memory_fit", FIT_70B),)),
        "It does not fit.",
        "Not either.",
    )
    with serve_app(standin.url, tmp_path) as app:
        client = chat_client(app.url)
        _, summary = client.predict(FIT_70B_QUESTION, "", api_name="/chat")
        context = summary["context"]
        assert context["window_tokens"] == FALLBACK_NUM_CTX and context["auto"] is True
        assert 0 < context["used_tokens"] < FALLBACK_NUM_CTX and "check_memory_fit" not in context["reason"]
        assert "recommend_machine" not in context["tools"] and "check_memory_fit" in context["tools"]
        _, second = client.predict("And with 32k context instead?", "", api_name="/chat")
        assert second["context"]["used_tokens"] > 0
    users = [m["content"] for m in standin.last_chat_request().messages if m["role"] == "user"]
    assert users == [FIT_70B_QUESTION, "And with 32k context instead?"]


def test_a_restored_history_is_summarised_like_a_live_one_and_refusals_stay(standin: OllamaStandIn) -> None:
    full = REGISTRY.get("check_memory_fit").run(FIT_70B).model_dump(mode="json")
    refusal = json.dumps({"error": "chip: unknown 'M9'", "hint": "Correct the arguments."})
    conversation = make_agent(standin).new_conversation()
    call = {"function": {"name": "check_memory_fit", "arguments": FIT_70B}}
    conversation.history = [
        {"role": "user", "content": FIT_70B_QUESTION},
        {"role": "assistant", "content": "", "tool_calls": [call, call]},
        {"role": "tool", "content": json.dumps(full), "tool_name": "check_memory_fit"},
        {"role": "tool", "content": refusal, "tool_name": "check_memory_fit"},
        {"role": "assistant", "content": "It does not fit."},
    ]
    standin.script_chat("Still no.")
    assert isinstance(list(conversation.turn("And with 32k context instead?"))[-1], DoneEvent)
    tools = [m["content"] for m in standin.last_chat_request().messages if m["role"] == "tool"]
    assert tools[0] == summarise_tool_result("check_memory_fit", full) and tools[1] == refusal


def test_measure_speed_runs_with_the_chats_automatic_window_so_ollama_does_not_reload(
    standin: OllamaStandIn,
) -> None:
    settings = Settings(ollama_host=standin.url, data_dir=Path("/nonexistent"))
    layer = OllamaLayer(standin.url, timeout_s=settings.request_timeout_s)
    # wired as launch.prepare wires it: measure_speed asks the agent for the model's window
    toolset = build_toolset(None, layer, num_ctx=lambda model: agent.context_window(model).num_ctx)
    agent = Agent(settings, layer, toolset, None, machine={"chip": "M4 Max", "memory_gb": 128})
    standin.script_chat("Warm.")
    assert isinstance(list(agent.new_conversation().turn("Hello"))[-1], DoneEvent)
    toolset.get("measure_speed").run({"model": "qwen2.5:7b"})
    assert [r.options["num_ctx"] for r in standin.chat_requests()] == [32768, 32768]
    assert standin.loads == [("qwen2.5:7b", 32768)], "the measurement reloaded the model"
