"""Launch-to-ready time of `launch.py`, as a ratio to `python -c "import gradio"` measured in the same run.

    uv run bench/startup.py [--reps 5] [--json bench/out/startup.json]

"Ready" is the first HTTP 200 on the UI's URL, measured from process start, with the knowledge index
already built and the Ollama stand-in (tests/ollama_standin) answering as Ollama with the models installed,
so the run includes the Ollama health check, the model check, the index sync (zero embeddings expected)
and the server start, but no download. The baseline and the launch runs alternate, so both see the same disk
cache and machine load; the medians are compared. Target: ratio <= 1.5.

"First line" is the time from spawning launch.py to its first line on stdout (read through a pipe, as a log
would), next to `python -c pass` (interpreter start-up) from the same run. Target (issue 11): <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.5
TARGET_FIRST_LINE_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_import_gradio() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True, cwd=ROOT)
    return time.perf_counter() - start


def time_python_start() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, cwd=ROOT)
    return time.perf_counter() - start


def time_launch(ollama_url: str, data_dir: Path, timeout_s: float = 120.0) -> tuple[float, float, str]:
    """(seconds to the first stdout line, seconds to the first HTTP 200 on its URL, output), from spawning
    launch.py; the process is then stopped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [
        sys.executable,
        str(ROOT / "launch.py"),
        "--no-browser",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--ollama-host",
        ollama_url,
    ]
    lines: list[str] = []
    first_line: list[float] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not first_line:
                first_line.append(time.perf_counter() - start)
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    elapsed = None
    try:
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.perf_counter() - start < timeout_s:
                if proc.poll() is not None:
                    break
                try:
                    if client.get(url).status_code == 200:
                        elapsed = time.perf_counter() - start
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
    finally:
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)
        output = "".join(lines)
    if elapsed is None or not first_line:
        raise RuntimeError(f"launch.py did not serve {url} (exit {proc.returncode}):\n{output}")
    return first_line[0], elapsed, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="Repetitions of each measurement (median used).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    from tests.ollama_standin import OllamaStandIn

    with OllamaStandIn() as standin, tempfile.TemporaryDirectory(prefix="advisor-bench-") as tmp:
        data_dir = Path(tmp)
        # Warm-up: builds the index (embedding through the stand-in) and warms the disk cache for both sides.
        _, first, output = time_launch(standin.url, data_dir)
        embeds_after_build = len(standin.embed_requests())
        time_import_gradio()
        baseline: list[float] = []
        launches: list[float] = []
        python_starts: list[float] = []
        first_lines: list[float] = []
        for _ in range(args.reps):
            baseline.append(time_import_gradio())
            python_starts.append(time_python_start())
            first_line, ready_s, _ = time_launch(standin.url, data_dir)
            first_lines.append(first_line)
            launches.append(ready_s)
        restart_embeds = len(standin.embed_requests()) - embeds_after_build

    base = statistics.median(baseline)
    ready = statistics.median(launches)
    ratio = ready / base
    python_start = statistics.median(python_starts)
    first_line_s = statistics.median(first_lines)
    result = {
        "import_gradio_s": [round(x, 3) for x in baseline],
        "launch_to_ready_s": [round(x, 3) for x in launches],
        "first_launch_with_index_build_s": round(first, 3),
        "median_import_gradio_s": round(base, 3),
        "median_launch_to_ready_s": round(ready, 3),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "embed_requests_on_restarts": restart_embeds,
        "python_start_s": [round(x, 3) for x in python_starts],
        "first_line_s": [round(x, 3) for x in first_lines],
        "median_python_start_s": round(python_start, 3),
        "median_first_line_s": round(first_line_s, 3),
        "first_line_ratio_to_python_start": round(first_line_s / python_start, 3),
        "target_first_line_s": TARGET_FIRST_LINE_S,
    }
    print(f"python -c 'import gradio'   median {base:6.2f} s  {result['import_gradio_s']}")
    print(f"launch.py to HTTP 200       median {ready:6.2f} s  {result['launch_to_ready_s']}")
    print(f"first launch (index build)         {first:6.2f} s")
    print(f"embedding requests on the {args.reps} restarts: {restart_embeds} (unchanged corpus: expect 0)")
    verdict = "OK" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"ratio launch/import gradio: {ratio:.2f}  (target <= {TARGET_RATIO}) {verdict}")
    print(f"python -c pass              median {python_start:6.2f} s  {result['python_start_s']}")
    print(f"launch.py first stdout line median {first_line_s:6.2f} s  {result['first_line_s']}")
    first_verdict = "OK" if first_line_s <= TARGET_FIRST_LINE_S else "ABOVE TARGET"
    print(
        f"first line: {first_line_s:.2f} s = {first_line_s / python_start:.1f}x python start-up "
        f"(target <= {TARGET_FIRST_LINE_S:.0f} s) {first_verdict}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
