"""Pure parts of the agent: context budgeting, tool calls written as text, citations, eval answer checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.context_budget import (
    ContextBudget,
    ContextOverflow,
    compact_json,
    estimate_tokens,
    split_exchanges,
)
from assistant.eval import Check, check_answer, load_questions, numbers_in
from assistant.events import AgentEventAdapter, DoneEvent, ToolCallEvent
from assistant.prompts import build_system_prompt, cited_ids
from assistant.reply_text import may_be_text_tool_call, parse_text_tool_calls
from tools import REGISTRY

KNOWN = {"estimate_speed", "check_memory_fit"}


def _history(exchanges: int, size: int = 400) -> list[dict]:
    history: list[dict] = []
    for i in range(exchanges):
        history.append({"role": "user", "content": f"question {i} " + "x" * size})
        history.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "estimate_speed", "arguments": {}}}],
            }
        )
        history.append({"role": "tool", "content": "{}", "tool_name": "estimate_speed"})
        history.append({"role": "assistant", "content": f"answer {i} " + "y" * size})
    return history


class _P:
    def __init__(self, pid: str, text: str) -> None:
        self.id, self.title, self.section, self.source, self.text = pid, "T", "S", "src", text


def _render(passages) -> str:
    return "SYSTEM " + " ".join(f"[p:{p.id}] {p.text}" for p in passages)


def _fit_history(budget: ContextBudget, history: list[dict[str, str]]) -> Any:
    """Fit `history` and a one-word question, with no passages and no tools."""
    return budget.fit(
        render_system=_render,
        passages=[],
        tool_specs=[],
        history=history,
        current=[{"role": "user", "content": "q"}],
    )


def test_budget_keeps_everything_when_it_fits() -> None:
    budget = ContextBudget.for_num_ctx(8192)
    fit = budget.fit(
        render_system=_render,
        passages=[_P("a", "alpha")],
        tool_specs=[{"type": "function"}],
        history=_history(2),
        current=[{"role": "user", "content": "now"}],
    )
    assert fit.dropped_messages == 0 and fit.dropped_passages == 0
    assert fit.messages[0]["role"] == "system" and "[p:a]" in fit.messages[0]["content"]
    assert fit.messages[-1] == {"role": "user", "content": "now"}
    assert len(fit.messages) == 1 + 8 + 1


def test_budget_trims_tool_work_then_answers_oldest_first_and_keeps_every_question() -> None:
    budget = ContextBudget.for_num_ctx(2048)
    history = _history(10, size=200)
    fit = budget.fit(
        render_system=_render,
        passages=[_P("a", "alpha " * 50)],
        tool_specs=[],
        history=history,
        current=[{"role": "user", "content": "latest"}],
    )
    kept = fit.messages[1:-1]
    assert [m for m in kept if m["role"] == "user"] == [m for m in history if m["role"] == "user"]
    assert fit.dropped_tool_messages == 20  # every earlier tool call and result went first
    assert 0 < fit.dropped_answers < 10 and fit.dropped_questions == 0 and fit.kept_questions == 10
    answers = [m["content"] for m in kept if m["role"] == "assistant"]
    assert answers and answers[-1].startswith("answer 9")  # the newest answers stay longest
    assert answers == [f"answer {i} " + "y" * 200 for i in range(10 - len(answers), 10)]
    assert kept[0]["role"] == "user"  # never starts with an orphaned tool message
    assert fit.passages and fit.estimated_tokens <= fit.budget_tokens
    summary = fit.dropped_summary(2048)
    assert summary is not None and "All 10 of your earlier questions are still included" in summary


def test_budget_drops_passages_after_answers_then_shortens_then_drops_questions_then_refuses() -> None:
    budget = ContextBudget.for_num_ctx(1024)
    passages = [_P(str(i), "word " * 60) for i in range(5)]
    fit = budget.fit(
        render_system=_render,
        passages=passages,
        tool_specs=[],
        history=_history(3),
        current=[{"role": "user", "content": "q"}],
    )
    assert (fit.dropped_tool_messages, fit.dropped_answers, fit.dropped_questions) == (6, 3, 0)
    assert (
        0 < len(fit.passages) < 5 and fit.passages == passages[: len(fit.passages)]
    )  # lowest-ranked go first
    long_questions = [{"role": "user", "content": f"question {i} " + "x" * 2000} for i in range(3)]
    fit = _fit_history(budget, long_questions)
    assert fit.shortened_questions >= 1 and fit.dropped_questions == 0
    assert all(m["content"].endswith("[shortened]") for m in fit.messages[1 : 1 + fit.shortened_questions])
    many = [{"role": "user", "content": f"question {i} " + "x" * 500} for i in range(12)]
    fit = _fit_history(budget, many)
    assert 0 < fit.dropped_questions < 12  # the last resort, oldest first
    assert fit.messages[1]["content"].startswith(f"question {fit.dropped_questions} ")
    assert "earliest question(s)" in (fit.dropped_summary(1024) or "")
    with pytest.raises(ContextOverflow, match="context window is 1024 tokens"):
        budget.fit(
            render_system=_render,
            passages=passages,
            tool_specs=[],
            history=[],
            current=[{"role": "user", "content": "z" * 5000}],
        )


def test_split_exchanges_groups_from_user_messages() -> None:
    assert [len(e) for e in split_exchanges(_history(3))] == [4, 4, 4]
    assert split_exchanges([]) == []


def test_estimate_is_conservative_for_prose() -> None:
    # ~4 chars per token for English prose in Llama/Qwen tokenizers: we must not under-count.
    text = "The M3 Max has 400 GB/s of memory bandwidth, which bounds decode speed. " * 20
    assert estimate_tokens(text) >= len(text) / 4


def test_compact_json_shortens_lists_but_stays_json() -> None:
    data = {"rows": [{"i": i, "text": "x" * 50} for i in range(200)], "assumptions": ["a"]}
    text = compact_json(data, max_tokens=400)
    parsed = json.loads(text)
    assert estimate_tokens(text) <= 400
    assert "_truncated" in parsed and len(parsed["rows"]) < 200
    small = compact_json({"a": 1}, 100)
    assert small == '{"a":1}'


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "estimate_speed", "arguments": {"chip": "M3 Max"}}',
        '<tool_call>\n{"name": "estimate_speed", "arguments": {"chip": "M3 Max"}}\n</tool_call>',
        '```json\n{"name": "estimate_speed", "parameters": {"chip": "M3 Max"}}\n```',
        '[{"type": "function", "function": {"name": "estimate_speed", '
        '"arguments": "{\\"chip\\": \\"M3 Max\\"}"}}]',
    ],
)
def test_text_tool_calls_are_recognised(content: str) -> None:
    calls = parse_text_tool_calls(content, KNOWN)
    assert calls is not None and len(calls) == 1
    assert calls[0].name == "estimate_speed"
    args = calls[0].arguments
    assert (json.loads(args) if isinstance(args, str) else args) == {"chip": "M3 Max"}


@pytest.mark.parametrize(
    "content",
    [
        "The M3 Max runs it at about 20 tok/s.",
        '{"name": "rm_rf", "arguments": {}}',  # not one of our tools
        '{"name": "estimate_speed", "arguments": {}} and then some prose',
        "```bash\nsudo sysctl iogpu.wired_limit_mb=40960\n```",
    ],
)
def test_ordinary_answers_are_not_tool_calls(content: str) -> None:
    assert parse_text_tool_calls(content, KNOWN) is None


def test_hold_back_decision() -> None:
    for prefix in ["", "{", '{"na', "<tool", "<tool_call>{", "`", "```json\n{", "[", "[{"]:
        assert may_be_text_tool_call(prefix), prefix
    for prefix in ["The", "[p:abc] says", "<b>", "```bash\nsudo", "42 tok/s"]:
        assert not may_be_text_tool_call(prefix), prefix


def test_cited_ids_only_known_in_order() -> None:
    text = "Bandwidth rules [p:bw#1]; see also [p:fit#2, p:bw#1] and [p:invented]."
    assert cited_ids(text, ["bw#1", "fit#2", "other"]) == ["bw#1", "fit#2"]


def test_system_prompt_lists_every_tool_and_the_rules() -> None:
    class T:
        def __init__(self, name: str, description: str) -> None:
            self.name, self.description = name, description

    prompt = build_system_prompt(
        [REGISTRY.get("estimate_speed"), T("new_tool", "Does a new thing. More detail.")]
    )
    assert "- estimate_speed: How fast (tokens/s) a local LLM generates" in prompt
    assert "Give the machine" not in prompt  # only the purpose sentence of the registry's description
    assert "- new_tool: Does a new thing." in prompt and "More detail" not in prompt
    for rule in ("Prefer tool results", "[p:ID]", "uncertainty", "units"):
        assert rule in prompt


def test_events_round_trip_through_the_discriminated_union() -> None:
    event = ToolCallEvent(call_id="c", name="estimate_speed", arguments={"chip": "M3 Max"})
    assert AgentEventAdapter.validate_python(event.model_dump()) == event
    done = DoneEvent(content="hi", eval_count=3, eval_duration_s=0.1, tokens_per_second=30.0)
    assert AgentEventAdapter.validate_json(done.model_dump_json()) == done


def test_eval_answer_checks() -> None:
    assert numbers_in("about 9.8 tok/s, 1,024 tokens, 128k context") == [9.8, 1024, 128000]
    checks = [Check(label="range", low=18, high=25), Check(label="unit", any_words=["tok/s"])]
    assert check_answer("Expect 21 tok/s on the 40-core M3 Max.", checks, "M3 Max 40-core?") == []
    # 40 is in the question, so echoing it must not satisfy a 35-45 range
    echo = [Check(label="range", low=35, high=45)]
    assert check_answer("The 40-core chip is fast.", echo, "on the 40-core M3 Max?") == ["range"]
    fit = Check(label="verdict", any_words=["fits", "yes"], forbid_words=["not fit", "n't fit"])
    assert check_answer("It does not fit.", [fit]) == ["verdict"]
    assert check_answer("Yes, it fits with 6 GB headroom.", [fit]) == []


def test_eval_questions_file_is_valid_and_big_enough() -> None:
    questions = load_questions()
    assert len(questions) >= 12
    assert len({q.id for q in questions}) == len(questions)
    names = {
        "estimate_speed",
        "check_memory_fit",
        "lookup_benchmarks",
        "recommend_machine",
        "search_knowledge",
        None,
    }
    for q in questions:
        assert set(q.expected_tools) <= names, q.id


def test_malformed_reply_is_classified_as_ollama_error_not_unavailable() -> None:
    from assistant.agent import event_kind
    from assistant.ollama import MalformedResponse, chat_error

    error = chat_error(
        MalformedResponse("Ollama sent a reply this client could not read: tool call without a name"),
        "qwen2.5:7b",
        120.0,
    )
    assert event_kind(error.kind) == "ollama_error" and "could not read" in str(error)
