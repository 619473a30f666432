"""CLI through a real subprocess: JSON output, --pretty, list, schema export, clean errors with exit code
2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_list() -> None:
    res = run("list")
    assert res.returncode == 0
    names = [line.split(":")[0] for line in res.stdout.splitlines()]
    assert names == ["estimate_speed", "check_memory_fit", "lookup_benchmarks", "recommend_machine"]


def test_estimate_speed_json() -> None:
    res = run("estimate_speed", "--chip", "M3 Max", "--gpu-cores", "40", "--model", "llama3.3:70b")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert 9.0 < out["ceiling_tokens_per_second"] < 9.5
    assert out["assumptions"] and out["sources"]


def test_check_memory_fit_json_and_underscore_flags() -> None:
    res = run(
        "check_memory_fit",
        "--chip",
        "m4 pro",
        "--memory_gb",
        "48",
        "--model",
        "llama3.3:70b",
        "--context-tokens",
        "8192",
        "--kv-cache-type",
        "q8_0",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # 42.5 GB of weights alone exceed the 38.7 GB GPU budget; weights + KV + macOS still fit the RAM.
    assert (out["verdict"], out["fits_on_gpu"], out["kv_cache_type"]) == ("partial_offload", False, "q8_0")


def test_architecture_as_json_flag() -> None:
    arch = '{"params_billion": 9, "n_layers": 36, "n_kv_heads": 8, "head_dim": 128, "native_context": 32768}'
    res = run("estimate_speed", "--bandwidth-gbps", "273", "--architecture", arch)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["params_billion"] == 9


def test_pretty_prints_tables() -> None:
    res = run("lookup_benchmarks", "--query", "70b", "--pretty")
    assert res.returncode == 0, res.stderr
    assert "llm_rows" in res.stdout and "Physically impossible" in res.stdout
    assert not res.stdout.lstrip().startswith("{")


@pytest.mark.parametrize("fmt", ["openai", "ollama", "mcp"])
def test_schema_export(fmt: str) -> None:
    res = run("schema", "--format", fmt)
    assert res.returncode == 0
    specs = json.loads(res.stdout)
    assert len(specs) == 4 and "$ref" not in res.stdout
    key = "name" if fmt == "mcp" else "function"
    assert all(key in s for s in specs)


QWEN_ON_M3_MAX = ["estimate_speed", "--chip", "M3 Max", "--model", "qwen2.5:7b"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["estimate_speed", "--chip", "M3 Max", "--gpu-cores", "35", "--model", "llama3.1:8b"], "30 or 40"),
        (
            ["estimate_speed", "--chip", "M3 Max", "--gpu-cores", "many", "--model", "llama3.1:8b"],
            "gpu_cores",
        ),
        (["estimate_speed", "--chip", "M3 Max", "--model", "nonsense"], "unknown model"),
        (["estimate_speed", "--bogus", "1"], "unrecognized arguments"),
        (["estimate_speed", "--chip", "M3 Max", "--architecture", "{bad"], "architecture"),
        ([*QWEN_ON_M3_MAX, "--cluster", '{"count": ' + "9" * 5000 + "}"], "cluster"),  # too many digits
        ([*QWEN_ON_M3_MAX, "--cluster", "[" * 30000 + "]" * 30000], "cluster"),  # deeper than Python's stack
        (
            ["check_memory_fit", "--chip", "M4 Pro", "--memory-gb", "-4", "--model", "llama3.1:8b"],
            "memory_gb",
        ),
        (["nope"], "invalid choice"),
        (["schema", "--format", "yaml"], "invalid choice"),
    ],
)
def test_bad_args_exit_2_without_traceback(args: list[str], needle: str) -> None:
    res = run(*args)
    assert res.returncode == 2
    assert needle in res.stderr
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
