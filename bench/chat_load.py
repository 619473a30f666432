"""Many browser sessions chatting at once through the UI's API: throughput and latency, as same-run ratios.

    uv run python bench/chat_load.py [--chats 50]

The real app (launch.prepare + ui.build_app) is served on 127.0.0.1 against the Ollama stand-in, which
answers at once, so what is measured is the app's own queueing and protocol work. Each chat is its own
gradio_client session asking two questions (the second carries the first turn's history). The baseline is
one chat alone, in the same run; the figure of interest is how the per-chat latency and total throughput
scale at `--chats` sessions at once (50 by default, the concurrency the reliability suite once timed).
Every answer is also checked to have reached the session that asked, so a fast but crossed run is refused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import chat_client, serve_app  # noqa: E402
from tests.ollama_standin import OllamaStandIn  # noqa: E402
from tests.reliability.common import echo_tag_responder  # noqa: E402


def one_chat(url: str, i: int) -> float:
    started = time.perf_counter()
    client = chat_client(url)
    for turn in ("x", "y"):
        answer, _ = client.predict(f"How fast? tag-{i}-{turn}", "", api_name="/chat")
        if answer != f"Answer for tag-{i}-{turn}: about 40 tokens/s.":
            raise SystemExit(f"chat {i} got someone else's answer: {answer!r}")
    return time.perf_counter() - started


def run(url: str, chats: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=chats) as pool:
        latencies = list(pool.map(lambda i: one_chat(url, i), range(chats)))
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=50)
    args = parser.parse_args()
    with OllamaStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
        standin.chat_responder = echo_tag_responder
        with serve_app(standin.url, Path(tmp)) as app:
            run(app.url, 1)  # warm-up: first requests pay for lazy imports
            solo_wall, solo = run(app.url, 1)
            wall, latencies = run(app.url, args.chats)
    p50 = statistics.median(latencies)
    n = args.chats
    print(f"1 chat alone:      {solo_wall:6.2f} s for 2 turns")
    print(f"{n} chats at once: {wall:6.2f} s wall; per chat p50 {p50:.2f} s, max {max(latencies):.2f} s")
    print(f"throughput: {n / wall:.1f} chats/s vs {1 / solo_wall:.1f} alone ({solo_wall * n / wall:.1f}x)")
    print(
        f"latency ratio (p50 under load / alone): {p50 / solo[0]:.1f}x; every answer reached its own session"
    )


if __name__ == "__main__":
    main()
