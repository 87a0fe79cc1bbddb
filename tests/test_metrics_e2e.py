"""Every metric on the shipped fixtures, through the CLI, with real workers (large effects only)."""

import json

import pytest

from conftest import FIXTURES, run_cli

pytestmark = pytest.mark.e2e


def test_every_metric_for_both_models_and_budgets_that_fail_the_gate(tmp_path):
    path = tmp_path / "all.json"
    result = run_cli(
        "compare", "-q", "-r", str(FIXTURES / "mlp_reference.onnx"), "-c", str(FIXTURES / "mlp_slow.onnx"),
        "-d", str(FIXTURES / "features.parquet"), "--input", "features=f*",
        "--batch-size", "1", "--batch-size", "32", "--concurrency", "4", "--rate", "2000", "--cold-starts", "2",
        "--max-latency-increase", "10000%", "--budget", "throughput:-50%", "--budget", "memory.peak_rss:+50%",
        "--budget", "cold_start:+500%", "--time-budget", "30", "--json", str(path),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(path.read_text())
    checks = {(c["metric"], c["batch_size"], c["scenario"]): c for c in report["checks"]}
    for key in [("latency.p50", 1, ""), ("latency.p95", 32, ""), ("throughput.batch1", 1, ""), ("throughput.batch32", 32, ""),
                ("load.p50", 1, "concurrency 4"), ("load.p99", 1, "rate 2000/s"), ("memory.peak_rss", None, ""),
                ("memory.load_rss", None, ""), ("cold_start", None, "")]:  # fmt: skip
        assert key in checks, sorted(checks)
        # the gate stops at its first decided failure: a tail quantile may not have its samples yet
        if not checks[key]["reason"].startswith("insufficient samples"):
            assert checks[key]["reference"] > 0 and checks[key]["candidate"] > 0, checks[key]
    # the slow model (about 11x the work) loses far more than half its throughput: a failed budget,
    # the one that decides; the gate stops at its first look with a failed check, so any other
    # check may still be undecided then: never on the wrong side of its budget
    throughput = [checks[("throughput.batch1", 1, "")], checks[("throughput.batch32", 32, "")]]
    assert all(check["verdict"] in ("fail", "inconclusive") for check in throughput), throughput
    assert any(check["verdict"] == "fail" and check["ci"][1] < 0.5 for check in throughput), throughput
    assert report["verdict"] == "fail" and report["reason"].startswith("throughput.batch"), report["reason"]
    assert checks[("memory.peak_rss", None, "")]["verdict"] == "pass"  # read once, at the end: not timed
    assert checks[("load.p50", 1, "concurrency 4")]["verdict"] in ("pass", "inconclusive")  # within 10000%
    for side in ("reference", "candidate"):
        memory = report["compared"][side]["memory"]
        assert memory["peak_rss"] > memory["load_rss"] > 0 and memory["peak_includes_load"] is False
        # the measuring worker's own start, then the two fresh ones
        assert len(report["cold_starts"][side]) == 1 + 2 and report["cold_starts"][side][1]["process_seconds"] > 0
    assert [stage["batch_size"] for stage in report["stages"]] == [1, 32]
    load = report["loads"][0]
    assert load["label"] == "concurrency 4" and load["candidate"]["queue"]["p50"] > load["candidate"]["service"]["p50"]
    text = run_cli("report", str(path)).stdout
    for heading in ("memory", "cold start (mean of 3: the measuring worker", "stages, per batch", "under load"):
        assert heading in text


def test_latency_against_sequence_length_flags_the_quadratic_model(tmp_path):
    path = tmp_path / "sizes.json"
    result = run_cli(
        "compare", "-q", "-r", str(FIXTURES / "seq_linear.onnx"), "-c", str(FIXTURES / "seq_quadratic.onnx"),
        "-d", str(FIXTURES / "sequences.parquet"), "--size-column", "n_tokens", "--cold-starts", "0",
        "--max-latency-increase", "10000%", "--budget", "latency_slope:+50%", "--json", str(path), "--time-budget", "30",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(path.read_text())
    (slope,) = [c for c in report["checks"] if c["metric"] == "latency_slope"]
    assert slope["verdict"] == "fail" and slope["unit"] == "ns/n_tokens" and slope["ratio"] > 2
    assert report["compared"]["reference"]["inputs"][0]["padded"] is True
    (analysis,) = report["sizes"]
    assert len(analysis["buckets"]) == 5 and analysis["column"] == "n_tokens"
    assert "FAIL: latency_slope at batch 1" in result.stdout
