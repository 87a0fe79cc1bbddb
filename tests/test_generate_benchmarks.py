"""benchmarks/generate.py's bookkeeping, without a model: where a compare's seconds went (read
from its progress lines' arrival), and the line that says what decided an A/A run."""

import pytest

from conftest import ROOT, load_script

bench = load_script(ROOT / "benchmarks" / "generate.py")

STAMPS = [
    (0.5, "perfgate: loading models (transformers / transformers on cpu, 1 thread(s) each)"),
    (10.0, "perfgate: 28 prompts (text) from data prompts.parquet: 28 of 28 rows"),
    (14.0, "perfgate: 28 prompts, 7 to 25 tokens (reference); measuring for up to 60 s"),
    (15.0, "perfgate: warm-up: reference 247 ms/request, candidate 620 ms/request (64 new tokens)"),
    (19.0, "perfgate: look 1 (8 request pairs, 4 s): ttft.p50 ... fail"),
    (25.0, "perfgate: look 2 (12 request pairs, 10 s): ..."),
]


def test_each_phase_runs_from_its_progress_line_to_the_next_and_the_last_to_the_exit():
    phases = bench._phases(STAMPS, 28.0)
    assert [name for name, _ in phases] == ["start, imports", "loading", "warm-up", "measuring", "report, exit"]
    assert [seconds for _, seconds in phases] == pytest.approx([0.5, 13.5, 1.0, 10.0, 3.0])
    assert sum(seconds for _, seconds in phases) == pytest.approx(28.0)


def test_a_run_that_stopped_early_shows_the_phases_it_reached():
    phases = bench._phases([*STAMPS[:3], (16.0, "perfgate: error: candidate: model 'x' gave no new token for prompt 1")], 17.0)
    assert [name for name, _ in phases] == ["start, imports", "loading", "report, exit"]
    assert sum(seconds for _, seconds in phases) == pytest.approx(17.0)


def test_the_checks_line_gives_each_gated_interval_and_why_one_is_undecided():
    report = {
        "run": {"looks": 10, "measure_seconds": 60.1, "stopped_because": "time budget"},
        "checks": [
            {"metric": "ttft.p50", "verdict": "pass", "ci": [0.95, 1.04], "n_reference": 300},
            {"metric": "ttft.p95", "verdict": "inconclusive", "ci": None, "reason": "insufficient samples: 8 per model, ttft.p95 needs 90", "n_reference": 300},
            {"metric": "e2e.p50", "verdict": "info", "ci": [0.9, 1.1], "n_reference": 300},
        ],
    }  # fmt: skip
    line = bench.checks_line(report)
    assert line.startswith("10 look(s), 300 requests per model, 60.1 s measuring, stopped: time budget")
    assert "ttft.p50 pass [-5.0%, +4.0%]" in line
    assert "ttft.p95 inconclusive (insufficient samples: 8 per model, ttft.p95 needs 90)" in line
    assert "e2e" not in line  # information only: nothing decided on it
