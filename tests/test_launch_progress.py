"""launch.py tells the terminal what it is doing from its first moment until "ready".

Read through a pipe, as a user's terminal or a log would: the first line comes before any slow import, and
the stretch between the index summary and "ready" (importing Gradio, building the page, starting the server)
is narrated instead of silent. No tight deadline: the first-line time is measured by bench/startup.py; here
it is only compared with the time to "ready" from the same run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import launch
from tests.harness import HANG_S, free_port, launch_py

ROOT = Path(__file__).resolve().parents[1]


def test_launch_narrates_start_up_from_the_first_line(standin: Any, tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "launch.py"), "--no-browser", "--port", str(free_port())]
    cmd += ["--data-dir", str(tmp_path), "--ollama-host", standin.url]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # progress bars; this test is about the plain lines on stdout
        text=True,
    )
    lines: list[tuple[float, str]] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic() - started, line.rstrip("\n")))
            if "is ready:" in line:
                ready.set()
        ready.set()  # the process ended: let the test report what it printed

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(HANG_S), [t for _, t in lines]
        text = [t for _, t in lines if t.strip()]
        assert text[0] == launch.STARTING, text
        assert text[1].startswith("Loading the assistant"), text
        summary = next(i for i, t in enumerate(text) if "chunks (" in t and "built-in" in t)
        ready_at = next(i for i, t in enumerate(text) if "is ready:" in t)
        between = text[summary + 1 : ready_at]
        # What used to be up to 50 s of silence is now narrated, in order.
        assert any(t.startswith("Building the page") for t in between), between
        assert any(t.startswith("Starting the web server on 127.0.0.1:") for t in between), between
        order = [t.split(" ")[0] for t in between if not t.startswith(" ")]
        assert order[-2:] == ["Building", "Starting"], between
        first_s = lines[0][0]
        ready_s = next(s for s, t in lines if "is ready:" in t)
        # The first line does not wait for the slow imports that make up most of the time to "ready".
        assert first_s < ready_s / 2, (first_s, ready_s)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(HANG_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(HANG_S)
        reader.join(5)


def test_help_prints_no_start_line() -> None:
    out = launch_py("--help")
    assert out.returncode == 0 and launch.STARTING not in out.stdout
    assert out.stdout.startswith("usage: launch.py")
