"""The live evaluation's machinery, driven end to end against the stand-in playing two scripted "models".

A good model calls the expected tool and reports its numbers; a careless one calls the wrong tool and answers
vaguely. The evaluation must tell them apart, skip a model that is not installed, and refuse to run without
--live. (Against a real Ollama the same code runs via `uv run python -m assistant.eval --live`.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assistant.eval import load_questions, main
from tests.ollama_standin import ChatScript, OllamaStandIn, RecordedRequest, ToolCallScript

IDS = ["speed-qwen32-m3max", "fit-70b-48gb-16k", "bench-sdxl-mini", "buy-1500-llm"]
QUESTIONS = {q.question: q for q in load_questions() if q.id in IDS}


def _answer_from(tool: str, result: dict) -> str:
    if tool == "estimate_speed":
        return f"Expect about {result['expected_tokens_per_second']:.1f} tok/s (an estimate)."
    if tool == "check_memory_fit":
        verdict = {"fits": "Yes, it fits", "does_not_fit": "No, it does not fit"}.get(
            result["verdict"], "Tight"
        )
        return f"{verdict}: it needs {result['breakdown']['total_gb']:.1f} GB."
    if tool == "lookup_benchmarks":
        row = result["image_rows"][0]
        return f"The article measured {row['seconds']:g} seconds for {row['model']}."
    return f"Buy the {result['recommendation']['chip']} {result['recommendation']['machine']}."


def responder(request: RecordedRequest) -> ChatScript:
    question = QUESTIONS[next(m["content"] for m in request.messages if m["role"] == "user")]
    last = request.messages[-1]
    careful = request.model == "qwen2.5:7b"
    if last["role"] == "user":
        assert question.reference is not None
        if careful:
            call = ToolCallScript(question.reference.tool, question.reference.arguments)
        else:
            call = ToolCallScript("lookup_benchmarks", {"query": "mac"})
        return ChatScript(tool_calls=(call,))
    result = json.loads(last["content"])
    if not careful:
        return ChatScript(text="Hard to say, it depends on many things.")
    return ChatScript(text=_answer_from(last["tool_name"], result))


def test_eval_compares_models_through_the_agent(
    standin: OllamaStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    standin.chat_responder = responder
    monkeypatch.setenv("OLLAMA_HOST", standin.url)
    monkeypatch.setenv("ADVISOR_DATA_DIR", str(tmp_path))
    code = main(["--live", "--only", ",".join(IDS), "--models", "qwen2.5:7b,llama3.3:70b,mistral:7b"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mistral:7b: not installed" in out
    summary = {
        m.group(1): m.groups()[1:] for m in re.finditer(r"^(\S+)\s+(\d+)/4\s+\d+%\s+(\d+)/4", out, re.M)
    }
    assert summary["qwen2.5:7b"] == ("4", "4"), out
    assert summary["llama3.3:70b"] == ("1", "0"), out  # lookup_benchmarks is only right for the SDXL question
    assert "knowledge search: hybrid" in out  # nomic-embed-text is installed in the stand-in


def test_eval_without_live_explains_and_sends_nothing(
    standin: OllamaStandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", standin.url)
    assert main([]) == 0
    assert "only runs with --live" in capsys.readouterr().out
    assert standin.requests == []


def test_eval_live_without_ollama_says_so(
    standin: OllamaStandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", standin.url)
    with standin.down():
        assert main(["--live"]) == 2
    assert "No Ollama answers at" in capsys.readouterr().out
