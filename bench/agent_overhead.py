"""What the agent adds on top of Ollama: per-turn overhead and streaming throughput, as same-run ratios.

    uv run python bench/agent_overhead.py [--turns 300] [--tokens 5000]

The Ollama stand-in (tests/ollama_standin) answers at once, so wall time is all client-side and protocol work.
Baselines are the bare official client (`ollama.Client.chat(stream=True)`) against the same stand-in in the
same run: once with a minimal request, and once with exactly the payload the agent sent (system prompt,
passages, tool schemas) so that the ratio isolates the agent's own code from the cost of a bigger request.

Targets: turn p50 <= 15 ms, p99 <= 50 ms, <= 1.5x the bare round trip; streaming >= 5,000
tokens/s. The target verdict uses retrieval disabled (top_k_passages=0) and the same-payload baseline; a run
with lexical (BM25) retrieval over the shipped passages is printed next to it for context.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ollama  # noqa: E402

from assistant.agent import Agent  # noqa: E402
from assistant.config import Settings  # noqa: E402
from assistant.events import DoneEvent, ErrorEvent  # noqa: E402
from assistant.ollama import OllamaLayer  # noqa: E402
from assistant.toolset import build_toolset  # noqa: E402
from tests.ollama_standin import ChatScript, OllamaStandIn  # noqa: E402

MODEL = "qwen2.5:7b"
QUESTION = "How fast would qwen2.5:32b run on an M3 Max, and why does memory bandwidth matter?"
SHORT_REPLY = "About fourteen tokens per second [p:x]."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], Any], n: int, warmup: int = 20) -> list[float]:
    return timed_interleaved([fn], n, warmup)[0]


def timed_interleaved(fns: list[Callable[[], Any]], n: int, warmup: int = 20) -> list[list[float]]:
    """Time several variants round-robin, so background load on a shared machine hits them all alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            out[i].append((time.perf_counter() - start) * 1000)
    return out


def build_agent(standin: OllamaStandIn, retrieval: str, data_dir: Path) -> Agent:
    knowledge = None
    top_k = 0
    if retrieval == "lexical":
        from knowledge.search import KnowledgeBase

        knowledge = KnowledgeBase(data_dir, None)
        knowledge.sync()
        top_k = 4
    settings = Settings(ollama_host=standin.url, data_dir=data_dir, top_k_passages=top_k)
    layer = OllamaLayer(standin.url, timeout_s=30.0)
    return Agent(settings, layer, build_toolset(knowledge, layer), knowledge)


def agent_turn(agent: Agent) -> Callable[[], None]:
    def run() -> None:
        conversation = agent.new_conversation()
        last = None
        for event in conversation.turn(QUESTION, model=MODEL):
            last = event
        if not isinstance(last, DoneEvent):
            raise SystemExit(f"agent turn failed: {last}")

    return run


def bare_turn(client: ollama.Client, payload: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        for _ in client.chat(stream=True, **payload):
            pass

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=300, help="timed turns per variant")
    parser.add_argument("--tokens", type=int, default=5000, help="tokens in the streaming test")
    args = parser.parse_args(argv)

    with OllamaStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
        standin.chat_responder = lambda _request: ChatScript(text=SHORT_REPLY)
        client = ollama.Client(host=standin.url, timeout=30.0)
        print(
            f"stand-in at {standin.url}, {args.turns} turns per variant, "
            f"reply {len(SHORT_REPLY.split())} tokens"
        )

        minimal = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]}
        variants: list[tuple[str, Callable[[], None]]] = [
            ("bare client, minimal request", bare_turn(client, minimal))
        ]
        for retrieval in ("none", "lexical"):
            try:
                agent = build_agent(standin, retrieval, Path(tmp) / retrieval)
            except Exception as exc:  # noqa: BLE001 - e.g. no passages shipped yet: report and go on
                print(f"  (retrieval={retrieval} skipped: {exc})")
                continue
            standin.clear_requests()
            agent_turn(agent)()
            sent = standin.last_chat_request().json
            same = {k: sent[k] for k in ("model", "messages", "tools", "options") if k in sent}
            size = len(str(sent))
            variants.append(
                (f"bare client, agent's payload ({retrieval}, {size // 1000} kB)", bare_turn(client, same))
            )
            variants.append((f"agent turn (retrieval: {retrieval})", agent_turn(agent)))
        # The stand-in records every request; keep that list short so it does not skew the later variants.
        standin.clear_requests()
        timings = timed_interleaved([fn for _, fn in variants], args.turns)
        rows = [(label, values) for (label, _), values in zip(variants, timings, strict=True)]
        standin.clear_requests()

        print(f"\n{'per-turn wall time':58s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean':>8s}")
        for label, values in rows:
            print(
                f"{label:58s} {percentile(values, 50):8.2f} {percentile(values, 99):8.2f} "
                f"{statistics.mean(values):8.2f}"
            )
        base_min = percentile(rows[0][1], 50)
        print("\nratios (p50 agent / p50 bare):")
        for i in range(1, len(rows), 2):
            same_label, same_values = rows[i]
            agent_label, agent_values = rows[i + 1]
            p50, p99 = percentile(agent_values, 50), percentile(agent_values, 99)
            ratio_same = p50 / percentile(same_values, 50)
            ratio_min = p50 / base_min
            if "none" in agent_label:
                verdict = "OK" if p50 <= 15 and p99 <= 50 and ratio_same <= 1.5 else "MISSES TARGET"
            else:  # retrieval has its own target (bench of the knowledge package); shown for context only
                verdict = "informational: includes a BM25 search over the shipped passages"
            print(
                f"  {agent_label}: {ratio_same:.2f}x vs same payload, {ratio_min:.2f}x vs minimal request; "
                f"p50 {p50:.2f} ms (<= 15), p99 {p99:.2f} ms (<= 50), ratio <= 1.5 -> {verdict}"
            )

        # Streaming throughput -------------------------------------------------------------------------------
        n = args.tokens
        tokens = tuple(f" t{i}" for i in range(n))
        standin.chat_responder = lambda _request: ChatScript(tokens=tokens)
        agent = build_agent(standin, "none", Path(tmp) / "stream")

        def stream_agent() -> None:
            count = 0
            last = None
            for event in agent.new_conversation().turn("stream please", model=MODEL):
                last = event
                count += event.type == "token"
            if not isinstance(last, DoneEvent) or isinstance(last, ErrorEvent):
                raise SystemExit(f"streaming turn failed: {last}")

        bare_payload = {"model": MODEL, "messages": [{"role": "user", "content": "stream please"}]}
        reps = 5
        bare_times = timed(bare_turn(client, bare_payload), reps, warmup=1)
        agent_times = timed(stream_agent, reps, warmup=1)
        bare_tps = n / (statistics.median(bare_times) / 1000)
        agent_tps = n / (statistics.median(agent_times) / 1000)
        verdict = "OK" if agent_tps >= 5000 else "MISSES TARGET"
        print(f"\nstreaming {n} tokens (median of {reps}):")
        print(f"  bare client      {bare_tps:10.0f} tokens/s")
        print(
            f"  agent            {agent_tps:10.0f} tokens/s  "
            f"({agent_tps / bare_tps:.2f}x bare; >= 5000 -> {verdict})"
        )
        print(f"  at 100 tokens/s from a real model the agent adds {100 / agent_tps * 100:.2f}% time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
