"""Live evaluation: how well does each local model choose tools and report their numbers?

`uv run python -m assistant.eval --live [--models qwen2.5:7b,llama3.1:8b]` asks every question in
`eval_questions.yaml` through the real agent and a real Ollama, and prints per model the tool-choice accuracy
(was the first tool called one of the expected ones) and the answer accuracy (does the answer contain every
required fact). Expected numbers come from running our own tools with the intended arguments in the same run,
so the check follows the estimator rather than a number frozen in the file.

It never runs by accident: `--live` is required, and it needs an Ollama that answers.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, Field, model_validator

from assistant.events import DoneEvent, ErrorEvent, ToolCallEvent
from tools import Registry, ToolError

if TYPE_CHECKING:
    from assistant.agent import Agent

QUESTIONS_FILE = Path(__file__).with_name("eval_questions.yaml")


class Reference(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Fact(BaseModel):
    """One thing the answer must contain; exactly one of the kinds is set."""

    words: list[str] | None = None
    number: float | None = None
    tolerance: float = Field(default=0.05, ge=0, le=1)
    number_from: str | None = None
    range_from: str | None = None
    widen: float = Field(default=0.15, ge=0, le=1)
    verdict_from: str | None = None
    text_from: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Fact:
        kinds = [
            self.words,
            self.number,
            self.number_from,
            self.range_from,
            self.verdict_from,
            self.text_from,
        ]
        if sum(k is not None for k in kinds) != 1:
            raise ValueError(
                "a fact needs exactly one of words/number/number_from/range_from/verdict_from/text_from"
            )
        return self


class EvalQuestion(BaseModel):
    id: str
    question: str
    expected_tools: list[str | None]
    reference: Reference | None = None
    facts: list[Fact] = Field(min_length=1)

    @model_validator(mode="after")
    def _reference_needed(self) -> EvalQuestion:
        needs = any(f.number_from or f.range_from or f.verdict_from or f.text_from for f in self.facts)
        if needs and self.reference is None:
            raise ValueError(f"{self.id}: facts read from a reference output need a reference call")
        return self


class Check(BaseModel):
    """A fact resolved against the reference output: a description plus what satisfies it."""

    label: str
    any_words: list[str] = Field(default_factory=list)
    forbid_words: list[str] = Field(default_factory=list)
    low: float | None = None
    high: float | None = None


class QuestionResult(BaseModel):
    id: str
    model: str
    tools_called: list[str]
    tool_ok: bool
    answer_ok: bool
    missing: list[str]
    seconds: float
    tokens_per_second: float | None = None
    error: str | None = None
    answer: str = ""


def load_questions(path: Path = QUESTIONS_FILE) -> list[EvalQuestion]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [EvalQuestion.model_validate(q) for q in raw["questions"]]


# Checking answers -------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s?([kK](?![a-zA-Z]))?")

VERDICT_WORDS: dict[str, tuple[list[str], list[str]]] = {
    # verdict: (any of these, none of these)
    "fits": (["fits", "will fit", "it fits", "fit comfortably", "fit easily", "yes"], ["not fit", "n't fit"]),
    "tight": (
        ["tight", "barely", "just fit", "little headroom", "close to the limit", "limited headroom"],
        [],
    ),
    "partial_offload": (["partial", "offload", "cpu", "not entirely", "not fully"], []),
    "does_not_fit": (
        ["not fit", "n't fit", "cannot", "can't", "too large", "too big", "out of memory", "oom", "exceed"],
        [],
    ),
}


def numbers_in(text: str) -> list[float]:
    values = []
    for match in _NUMBER.finditer(text):
        value = float(match.group(1).replace(",", ""))
        if match.group(2):
            value *= 1000
        values.append(value)
    return values


def _path(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def resolve_checks(question: EvalQuestion, toolset: Registry) -> list[Check]:
    """Turn the question's facts into concrete checks, running the reference tool for data-driven ones."""
    output: dict[str, Any] | None = None
    if question.reference is not None:
        try:
            output = (
                toolset.get(question.reference.tool).run(question.reference.arguments).model_dump(mode="json")
            )
        except ToolError as exc:
            raise ValueError(f"{question.id}: reference call failed: {exc}") from exc
    checks: list[Check] = []
    for fact in question.facts:
        if fact.words is not None:
            checks.append(Check(label="one of " + "/".join(fact.words), any_words=fact.words))
        elif fact.number is not None:
            n, t = fact.number, fact.tolerance
            checks.append(Check(label=f"number {n:g}", low=n * (1 - t), high=n * (1 + t)))
        elif fact.number_from is not None:
            assert output is not None
            n, t = float(_path(output, fact.number_from)), fact.tolerance
            checks.append(Check(label=f"{fact.number_from}≈{n:g}", low=n * (1 - t), high=n * (1 + t)))
        elif fact.range_from is not None:
            assert output is not None
            low, high = (float(v) for v in _path(output, fact.range_from))
            checks.append(
                Check(
                    label=f"{fact.range_from} {low:g}-{high:g}",
                    low=low * (1 - fact.widen),
                    high=high * (1 + fact.widen),
                )
            )
        elif fact.verdict_from is not None:
            assert output is not None
            verdict = str(_path(output, fact.verdict_from))
            wanted, forbidden = VERDICT_WORDS.get(verdict, ([verdict], []))
            checks.append(Check(label=f"verdict {verdict}", any_words=wanted, forbid_words=forbidden))
        elif fact.text_from is not None:
            assert output is not None
            text = str(_path(output, fact.text_from))
            checks.append(Check(label=f"{fact.text_from}={text}", any_words=[text]))
    return checks


def check_answer(answer: str, checks: Sequence[Check], question: str = "") -> list[str]:
    """Labels of the checks the answer fails (empty = correct).

    Numbers that already appear in the question (a core count, a context size) do not count as the answer's
    figure, or "M3 Max 40-core" echoed back would satisfy a 35-45 tok/s range.
    """
    lowered = answer.lower()
    asked = set(numbers_in(question))
    found = numbers_in(answer)
    missing: list[str] = []
    for check in checks:
        ok = True
        if check.any_words:
            ok = any(_has_word(lowered, w.lower()) for w in check.any_words)
            if ok and check.forbid_words:
                ok = not any(w.lower() in lowered for w in check.forbid_words)
        if ok and check.low is not None and check.high is not None:
            low, high = check.low, check.high
            ok = any(low <= v <= high for v in found if v not in asked)
        if not ok:
            missing.append(check.label)
    return missing


def _has_word(text: str, word: str) -> bool:
    if re.fullmatch(r"[a-z0-9 ]+", word):
        # Left boundary only, so "second" also matches "seconds" but "fit" does not match "outfit".
        return re.search(r"(?<![a-z0-9])" + re.escape(word), text) is not None
    return word in text


def tool_choice_ok(question: EvalQuestion, called: Sequence[str]) -> bool:
    if not called:
        return None in question.expected_tools
    return called[0] in question.expected_tools


def run_question(agent: Agent, question: EvalQuestion, model: str, checks: Sequence[Check]) -> QuestionResult:
    started = time.perf_counter()
    conversation = agent.new_conversation()
    called: list[str] = []
    answer = ""
    error: str | None = None
    tps: float | None = None
    for event in conversation.turn(question.question, model=model):
        if isinstance(event, ToolCallEvent):
            called.append(event.name)
        elif isinstance(event, DoneEvent):
            answer = event.content
            tps = event.tokens_per_second
        elif isinstance(event, ErrorEvent):
            error = event.message
    missing = check_answer(answer, checks, question.question) if error is None else ["(no answer)"]
    return QuestionResult(
        id=question.id,
        model=model,
        tools_called=called,
        tool_ok=tool_choice_ok(question, called),
        answer_ok=error is None and not missing,
        missing=missing,
        seconds=time.perf_counter() - started,
        tokens_per_second=tps,
        error=error,
        answer=answer,
    )


# Command line -----------------------------------------------------------------------------------------------


def _build_agent(settings: Any) -> tuple[Agent, Any, str]:
    from assistant.app_graph import build_services, installed_embedder
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase

    ollama = OllamaLayer(settings.ollama_host, timeout_s=settings.request_timeout_s)
    embedder, _ = installed_embedder(ollama, settings)
    knowledge = KnowledgeBase(settings.data_dir, embedder, chroma_url=settings.chroma_url)
    try:
        knowledge.sync()
        mode = "hybrid" if embedder else "lexical"
    except Exception:  # noqa: BLE001 - embeddings failing is not a reason to skip the evaluation
        knowledge = KnowledgeBase(settings.data_dir, None, chroma_url=settings.chroma_url)
        knowledge.sync()
        mode = "lexical"
    agent = build_services(settings, ollama, knowledge).agent
    assert agent is not None  # there is an Ollama layer, so there is a chat
    return agent, ollama, mode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", action="store_true", help="actually run against the Ollama at OLLAMA_HOST")
    parser.add_argument("--models", default="", help="comma-separated Ollama models (default: chat model)")
    parser.add_argument("--only", default="", help="comma-separated question ids to run")
    parser.add_argument("--show-answers", action="store_true", help="print every answer")
    args = parser.parse_args(argv)

    questions = load_questions()
    if args.only:
        wanted = {q.strip() for q in args.only.split(",") if q.strip()}
        questions = [q for q in questions if q.id in wanted]
    if not args.live:
        print(
            f"{len(questions)} evaluation questions loaded from {QUESTIONS_FILE.name}; nothing was run.\n"
            "This evaluation talks to a real Ollama and takes minutes per model, so it only runs with "
            "--live:\n"
            "  uv run python -m assistant.eval --live [--models qwen2.5:7b,llama3.1:8b]"
        )
        return 0

    from assistant.config import Settings
    from assistant.ollama import OllamaLayer, canonical_model_name

    settings = Settings()
    health = OllamaLayer(settings.ollama_host, timeout_s=settings.probe_timeout_s).health()
    if not health.ok:
        print(
            f"No Ollama answers at {settings.ollama_host}: {health.problem or 'no answer'}. "
            f"{health.advice or 'Start Ollama (`ollama serve`) and run again.'}"
        )
        return 2
    agent, ollama, mode = _build_agent(settings)
    installed = {canonical_model_name(m.name) for m in ollama.installed_models()}
    models = [m.strip() for m in args.models.split(",") if m.strip()] or [settings.chat_model]
    print(
        f"Ollama {health.version} at {settings.ollama_host}; knowledge search: {mode}; "
        f"{len(questions)} questions"
    )

    checks = {q.id: resolve_checks(q, agent.toolset) for q in questions}
    summary: list[tuple[str, int, int, int, float]] = []
    for model in models:
        if canonical_model_name(model) not in installed:
            print(f"\n{model}: not installed (run `ollama pull {model}`), skipped")
            continue
        results = _run_model(agent, model, questions, checks, show_answers=args.show_answers)
        n = len(results)
        tool_ok, answer_ok = sum(r.tool_ok for r in results), sum(r.answer_ok for r in results)
        summary.append((model, n, tool_ok, answer_ok, sum(r.seconds for r in results)))
    _print_summary(summary)
    return 0


def _run_model(
    agent: Agent,
    model: str,
    questions: list[EvalQuestion],
    checks: dict[str, list[Check]],
    *,
    show_answers: bool,
) -> list[QuestionResult]:
    """Every question against one model, a line each as it is answered."""
    print(f"\n== {model} ==")
    results = []
    for question in questions:
        result = run_question(agent, question, model, checks[question.id])
        results.append(result)
        status = "ok " if result.answer_ok else "BAD"
        tool = "ok " if result.tool_ok else "BAD"
        detail = result.error or (", ".join(result.missing) if result.missing else "")
        print(
            f"  answer {status} tool {tool} {result.id:28s} "
            f"tools={','.join(result.tools_called) or '-':34s} "
            f"{result.seconds:5.1f}s {detail}"
        )
        if show_answers:
            print("    " + result.answer.replace("\n", "\n    "))
    return results


def _print_summary(summary: list[tuple[str, int, int, int, float]]) -> None:
    if not summary:
        return
    print("\nmodel                      tool-choice   answer        time")
    for model, n, tool_ok, answer_ok, seconds in summary:
        print(
            f"{model:26s} {tool_ok:2d}/{n} {tool_ok / n:5.0%}  "
            f"{answer_ok:2d}/{n} {answer_ok / n:5.0%}  {seconds:6.1f}s"
        )


if __name__ == "__main__":
    sys.exit(main())
