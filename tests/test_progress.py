"""Progress a person can follow: the structured status the engine gives beside its plain
lines, the live line drawn from it on a terminal (a forced-terminal console, a fake clock),
and the plain lines of a CI log, unchanged."""

import io
import subprocess
import sys
from dataclasses import replace

from conftest import ROOT
from fakes import FakeClock, in_process_factory, lognormal
from perfgate.config import CompareConfig
from perfgate.engine.pipeline import run_comparison
from perfgate.engine.progress import LiveStatus, Status, deciding_check, on_stderr, status_line
from perfgate.results import Verdict

MS = 1e6


class Recorder:
    """A progress callable that also takes statuses, as the live line does."""

    def __init__(self):
        self.lines, self.statuses = [], []

    def __call__(self, message):
        self.lines.append(message)

    def status(self, status):
        self.statuses.append(status)


def run(data, progress, candidate_ms=1.0):
    clock = FakeClock()
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", time_budget_s=10.0, cold_starts=2,
    )  # fmt: skip
    factory = in_process_factory(clock, {"reference": lognormal(1 * MS), "candidate": lognormal(candidate_ms * MS)})
    return run_comparison(config, worker_factory=factory, clock=clock.seconds, progress=progress)


def test_the_engine_gives_each_phase_and_each_look_as_a_status(feature_table_path):
    recorder = Recorder()
    report = run(feature_table_path, recorder)
    phases = [status.phase for status in recorder.statuses]
    assert phases[:4] == ["loading", "outputs", "cold starts", "warm-up"]
    assert phases[4:] == ["measuring"] * (1 + report.run.looks)  # its start, then each look
    last = recorder.statuses[-1]
    assert last.time_budget_s == 10.0 and last.elapsed_s == report.run.measure_seconds
    assert last.deciding.startswith("latency.p") and last.deciding.endswith("vs +15%")


def test_the_plain_lines_are_the_same_with_or_without_a_status_taker(feature_table_path):
    plain = []
    run(feature_table_path, plain.append)
    recorder = Recorder()
    run(feature_table_path, recorder)
    assert plain == recorder.lines and any(line.startswith("look 1 ") for line in plain)


def test_the_live_line_redraws_in_place_with_the_time_running(feature_table_path):
    seconds = [100.0]
    out = io.StringIO()
    from rich.console import Console

    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    with LiveStatus(console, clock=lambda: seconds[0], auto_refresh=False) as live:
        live("loading models (onnxruntime / onnxruntime on cpu, 1 thread(s) each)")
        live("look 1 (8 block pairs, 0.3 s): latency.p50 at batch 1 +1% [-2%, +4%] pass")
        live.status(Status("measuring", 12.3, 60.0, "latency.p95 at batch 1 +4.1% [-2%, +10.3%] vs +15%"))
        assert live.line() == "perfgate: measuring 12.3 s / 60 s · latency.p95 at batch 1 +4.1% [-2%, +10.3%] vs +15%"
        seconds[0] += 2.0
        assert live.line().startswith("perfgate: measuring 14.3 s / 60 s")
        live.status(Status("measuring", 13.0, 60.0, "latency.p95 at batch 1 +4% [-1%, +9%] vs +15%"))  # read before judging
        assert live.line().startswith("perfgate: measuring 14.3 s / 60 s · latency.p95 at batch 1 +4% [-1%, +9%]")
    drawn = out.getvalue()
    assert "perfgate: loading models" in drawn
    assert "look 1" not in drawn  # the live line shows the looks
    assert "\x1b[" in drawn and "measuring 12.3 s / 60 s" in drawn  # cursor moves: redrawn in place
    assert "measuring 14.3 s / 60 s" in [line for line in drawn.splitlines() if "measuring" in line][-1]  # the last state stays


def test_a_terminal_gets_the_live_line_a_log_or_quiet_gets_what_it_had(monkeypatch):
    def plain(message):
        return None

    with on_stderr(plain) as shown:  # pytest's stderr is no terminal: a CI log
        assert shown is plain
    with on_stderr(None) as shown:
        assert shown is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with on_stderr(plain) as shown:
        assert isinstance(shown, LiveStatus)
    with on_stderr(None) as shown:  # --quiet on a terminal too
        assert shown is None


def test_the_deciding_check_is_a_failure_else_the_one_farthest_from_deciding(feature_table_path):
    report = run(feature_table_path, None)
    p50, p95 = [c for c in report.checks if c.metric in ("latency.p50", "latency.p95")]
    words = lambda check: check.metric  # noqa: E731
    wide = replace(p95, verdict=Verdict.INCONCLUSIVE, ci=(0.9, 1.3))
    assert deciding_check([p50, wide], words).startswith("latency.p95 ")
    failed = replace(p50, verdict=Verdict.FAIL, ci=(1.2, 1.4), ratio=1.3)
    assert deciding_check([failed, wide], words) == "latency.p50 +30% [+20%, +40%] vs +15%"
    assert deciding_check([], words) is None
    assert status_line(Status("loading", 1.25)) == "loading 1.2 s"


def test_import_perfgate_does_not_import_rich():
    code = "import sys, perfgate, perfgate.engine.pipeline, perfgate.cli; print('rich' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"
