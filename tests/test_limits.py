"""How long perfgate waits for each step of a model (in virtual time, in-process), and the
warning for a model whose memory grows block after block."""

from __future__ import annotations

import json
import re

import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli

from fakes import FakeClock, in_process_factory
from perfgate.cli import _flag as cli_flag
from perfgate.config import CompareConfig
from perfgate.judge.diagnostics import leak_per_block
from perfgate.errors import UsageError
from perfgate.engine.pipeline import run_comparison
from perfgate.engine.single import measure
from perfgate.worker.protocol import call_limit
from perfgate.worker import Timeout
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S, LOAD_TIMEOUT_S, MIN_CALL_TIMEOUT_S, load_limit

MS = 1e6
COMPARE = ("compare", "-r", str(FIXTURES / "mlp_reference.onnx"), "-c", str(FIXTURES / "mlp_slow.onnx"), "-d", str(FIXTURES / "features.parquet"))
MiB = 2**20


def constant(ns):
    return lambda rng, clock, feed: ns


class Recording:
    """A worker that notes the time limit of every call it is given."""

    def __init__(self, worker, limits: list) -> None:
        self.worker, self.role, self.limits = worker, worker.role, limits

    def start(self, threads=1, cpus=None):
        self.worker.start(threads, cpus)

    def begin(self, call):
        self.worker.begin(call)

    def ready(self, timeout):
        return self.worker.ready(timeout)

    def finish(self, call, timeout):
        self.limits.append((self.role, call.name, timeout))
        return self.worker.finish(call, timeout)

    def call(self, call, *, timeout):
        self.begin(call)
        return self.finish(call, timeout)

    def close(self):
        self.worker.close()


def run(data, *, per_role=None, limits=None, **options):
    clock = FakeClock()
    options.setdefault("time_budget_s", 10.0)
    options.setdefault("cold_starts", 0)
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data),
        inputs={"x": "f*"}, reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", **options,
    )  # fmt: skip
    make = in_process_factory(clock, {"reference": constant(1 * MS), "candidate": constant(1 * MS)}, per_role=per_role)
    factory = make if limits is None else (lambda role, log_dir: Recording(make(role, log_dir), limits))
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def test_first_calls_warm_up_and_cold_starts_are_bounded_by_the_call_timeout(feature_table_path):
    limits: list = []
    run(feature_table_path, limits=limits, call_timeout_s=7.0, cold_starts=1, per_role={"candidate": {"load_ns": 2e9}})
    by_call = {}
    for role, name, timeout in limits:
        by_call.setdefault((role, name), set()).add(timeout)
    # the first call of unknown length, then the rest of the warm-up, which stops at 30 s once its last call returns
    assert by_call[("candidate", "warm_up")] == {Timeout((7.0, 37.0), by_call_timeout=True)}
    # start and loading: 50x what starting and loading the main workers took (2 s) plus the call
    # timeout (107 s), at most the load limit of 10 call timeouts; the first call: the call timeout
    assert by_call[("candidate-cold-start-1", "cold_start")] == {Timeout((70.0, 7.0), by_call_timeout=True)}
    assert by_call[("reference-cold-start-1", "cold_start")] == {Timeout((70.0, 7.0), by_call_timeout=True)}
    # a block is 2 calls of 1 ms (about 2 ms of calls): 50x its 2 ms, plus the call timeout
    assert by_call[("reference", "run_block")] == {Timeout((7.1,), by_call_timeout=True)}
    # starting and loading: 10 call timeouts (600 s at the default), naming --call-timeout when it ends
    assert by_call[("reference", "load")] == {Timeout((70.0,), by_call_timeout=True)}
    assert load_limit(DEFAULT_CALL_TIMEOUT_S) == LOAD_TIMEOUT_S == 600.0


def test_the_call_timeout_must_be_a_positive_number_of_seconds(feature_table_path):
    for bad in (0, -1.0, float("inf"), float("-inf"), float("nan"), "60", True):
        with pytest.raises(UsageError) as raised:
            CompareConfig.from_options("r.onnx", "c.onnx", str(feature_table_path), call_timeout_s=bad)
        assert "--call-timeout must be a positive number of seconds" in raised.value.in_words(cli_flag)
    assert CompareConfig.from_options("r.onnx", "c.onnx", "d.parquet").measuring.call_timeout_s == DEFAULT_CALL_TIMEOUT_S
    from perfgate.cli import compare

    (flag,) = [param for param in compare.params if param.name == "call_timeout_s"]
    assert flag.default == DEFAULT_CALL_TIMEOUT_S


@pytest.mark.parametrize("tiny", [1e-9, 1e-6, 0.000999, 5e-324])
def test_a_call_timeout_too_small_to_measure_anything_is_a_usage_error(feature_table_path, tiny):
    # 1e-9 ended in exit 3 mostly, and once in a pass: a limit no call can meet decides nothing
    with pytest.raises(UsageError) as raised:
        CompareConfig.from_options("r.onnx", "c.onnx", str(feature_table_path), call_timeout_s=tiny)
    assert f"--call-timeout must be at least 0.001 s, got {tiny!r}" in raised.value.in_words(cli_flag)


def test_the_smallest_call_timeout_is_accepted_and_bounds_loading_by_ten_of_it(feature_table_path):
    config = CompareConfig.from_options("r.onnx", "c.onnx", str(feature_table_path), call_timeout_s=MIN_CALL_TIMEOUT_S)
    assert config.measuring.call_timeout_s == 0.001
    assert load_limit(config.measuring.call_timeout_s) == pytest.approx(0.01)


@pytest.mark.parametrize("entry", ["compare", "calibrate"])
def test_the_api_refuses_a_call_timeout_too_small_in_its_own_words(feature_table_path, entry):
    import perfgate

    if entry == "compare":
        run_it = lambda timeout: perfgate.compare("r.onnx", "c.onnx", str(feature_table_path), call_timeout_s=timeout)  # noqa: E731
    else:
        run_it = lambda timeout: perfgate.calibrate("r.onnx", str(feature_table_path), call_timeout_s=timeout)  # noqa: E731
    with pytest.raises(UsageError, match=r"call_timeout_s must be at least 0.001 s, got 1e-09"):
        run_it(1e-9)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UsageError, match=r"call_timeout_s must be a positive number of seconds"):
            run_it(bad)


def _measured_limits(feature_table_path, **options):
    limits: list = []
    clock = FakeClock()
    make = in_process_factory(clock, {"model": constant(1 * MS)})
    measure(
        "model.fake", str(feature_table_path), inputs={"x": "f*"}, backend="fakes:FakeBackend", time_budget_s=1.0,
        worker_factory=lambda role, log_dir: Recording(make(role, log_dir), limits), clock=clock.seconds, **options,
    )  # fmt: skip
    by_call = {}
    for _, name, timeout in limits:
        by_call.setdefault(name, set()).add(timeout)
    return by_call


@pytest.mark.parametrize("call_timeout_s", [None, 5.0, 0.25])
def test_measure_holds_its_worker_to_the_hang_rules_of_a_comparison(feature_table_path, call_timeout_s):
    given = DEFAULT_CALL_TIMEOUT_S if call_timeout_s is None else call_timeout_s
    by_call = _measured_limits(feature_table_path, **({} if call_timeout_s is None else {"call_timeout_s": call_timeout_s}))
    # the first call of unknown length gets the call timeout (it had 150 s), the warm-up its 30 s more
    assert by_call["warm_up"] == {Timeout((given, 30.0 + given), by_call_timeout=True)}
    # a block of 10 calls of 1 ms: 50x its 10 ms plus the call timeout, as call_limit says
    for step in ("run_block", "run_window"):
        assert by_call[step] and all(limit.seconds == pytest.approx((call_limit(given, 10 * 1e-3),)) and limit.by_call_timeout
                                     for limit in by_call[step])  # fmt: skip
    assert by_call["load"] == {Timeout((load_limit(given),), by_call_timeout=True)}
    if call_timeout_s is None:
        assert load_limit(given) == LOAD_TIMEOUT_S


@pytest.mark.parametrize("bad, says", [(1e-9, "must be at least 0.001 s"), (0, "must be a positive number"),
                                       (float("nan"), "must be a positive number"), (-1, "must be a positive number")])
def test_measure_refuses_a_call_timeout_as_compare_does(feature_table_path, bad, says):
    with pytest.raises(UsageError, match=f"call_timeout_s {says}"):
        measure("model.fake", str(feature_table_path), inputs={"x": "f*"}, backend="fakes:FakeBackend", call_timeout_s=bad)


# --- a model whose memory grows ---------------------------------------------------------------


def test_a_model_whose_memory_grows_block_after_block_is_warned_about(feature_table_path):
    report = run(feature_table_path, per_role={"candidate": {"leak_bytes": 1 * MiB}})
    leaks = [warning for warning in report.warnings if "leak" in warning]
    # a block of 10 calls between two readings (no throughput window on a CPU without its budget): 10 MiB
    assert len(leaks) == 1 and leaks[0].startswith("memory: the candidate's RSS grew after nearly every block, by about 2 MiB a block")
    steady = run(feature_table_path)
    assert not [warning for warning in steady.warnings if "leak" in warning]


def test_only_steady_growth_beyond_the_floor_is_a_leak():
    start = 100 * MiB
    assert leak_per_block([start + block * MiB for block in range(20)]) == pytest.approx(MiB)
    # early growth (caches, the allocator) then flat
    assert leak_per_block([start + min(block, 10) * 4 * MiB for block in range(20)]) is None
    # one large allocation that stays
    assert leak_per_block([start + (50 * MiB if block >= 15 else 0) for block in range(20)]) is None
    # an allocator that gives memory back and takes it again
    assert leak_per_block([start + (block % 2) * 10 * MiB for block in range(20)]) is None
    # steady, but less than the floor over the settled half
    assert leak_per_block([start + block * 100_000 for block in range(20)]) is None
    assert leak_per_block([start + block * 100_000 for block in range(20)], floor=100_000) == pytest.approx(100_000)
    assert leak_per_block([start + block * MiB for block in range(7)]) is None  # too few blocks to tell


# --- the call timeout on the command line -----------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("value, words", [
    ("1e-9", "--call-timeout must be at least 0.001 s, got 1e-09"),
    ("0.0005", "--call-timeout must be at least 0.001 s, got 0.0005"),
    ("nan", "--call-timeout must be a positive number of seconds, got nan"),
    ("inf", "--call-timeout must be a positive number of seconds, got inf"),
    ("-1", "--call-timeout must be a positive number of seconds, got -1.0"),
    ("0", "--call-timeout must be a positive number of seconds, got 0.0"),
])  # fmt: skip
def test_the_cli_refuses_a_call_timeout_that_measures_nothing(tmp_path, value, words):
    result = run_cli(*COMPARE, "--call-timeout", value, "--json", str(tmp_path / "r.json"), timeout=120)
    assert_one_line_error(result, 2, words)
    assert json.loads((tmp_path / "r.json").read_text())["error"]["exit_code"] == 2


@pytest.mark.e2e
def test_a_config_file_s_call_timeout_too_small_is_refused_in_its_words(tmp_path):
    (tmp_path / "perfgate.toml").write_text(
        f'reference = "{FIXTURES / "mlp_reference.onnx"}"\ncandidate = "{FIXTURES / "mlp_slow.onnx"}"\n'
        f'data = "{FIXTURES / "features.parquet"}"\ncall-timeout = 1e-9\n'
    )
    result = run_cli("compare", cwd=tmp_path, timeout=120)
    assert_one_line_error(result, 2, "call-timeout must be at least 0.001 s, got 1e-09")


# --- a model path that would block its worker -------------------------------------------------


def no_worker(role, log_dir):
    raise AssertionError("a worker was started for a model path that is no file")


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/null"])
def test_the_api_refuses_a_model_path_that_is_no_file_before_any_worker_starts(tmp_path, feature_table_path, kind):
    import os

    if kind == "fifo":
        os.mkfifo(tmp_path / "model.onnx")
        path = str(tmp_path / "model.onnx")
    else:
        path = kind
    words = "is a named pipe (FIFO)" if kind == "fifo" else "is a character device"
    with pytest.raises(UsageError, match=re.escape(f"{path!r} {words}, not a model file or directory")):
        measure(path, str(feature_table_path), backend="onnxruntime", worker_factory=no_worker)
    config = CompareConfig.from_options(path, path, str(feature_table_path), reference_backend="onnxruntime",
                                        candidate_backend="onnxruntime")  # fmt: skip
    with pytest.raises(UsageError, match=re.escape(f"{path!r} {words}")):
        run_comparison(config, worker_factory=no_worker)


def test_compare_and_measure_size_and_bound_their_blocks_by_the_one_measuring_loop(feature_table_path, monkeypatch):
    """With the measuring loop's rules changed, every block, window, load episode and warm-up
    of a comparison and of measure() (a model in its worker, and a callable in this
    process) follows the change: a second loop, with sizes and limits of its own, would not."""
    from perfgate.engine import blocks

    monkeypatch.setattr(blocks, "call_limit", lambda call_timeout_s, expected_s=0.0: 1000.0 + call_timeout_s + expected_s)
    monkeypatch.setattr(blocks.BlockRules, "calls_per_block", lambda self, typical_ns: 3)

    compared: list = []
    report = run(feature_table_path, limits=compared, call_timeout_s=7.0, concurrency=(2,))
    assert {series.calls_per_block for series in report.series} == {3}
    by_call: dict = {}
    for _, name, timeout in compared:
        by_call.setdefault(name, set()).add(timeout)
    assert by_call["warm_up"] == {Timeout((1007.0, 1037.0), by_call_timeout=True)}
    # 3 calls of 1 ms in a block: its expected 3 ms on top of the changed rule's 1007 s (no
    # throughput windows here: a CPU without a throughput budget has none)
    assert [(limit.seconds, limit.by_call_timeout) for limit in by_call["run_block"]] == [((pytest.approx(1007.003),), True)]
    assert by_call["run_load"] and all(limit.seconds[0] > 1007.0 for limit in by_call["run_load"])

    measured: list = []
    clock = FakeClock()
    make = in_process_factory(clock, {"model": constant(1 * MS)})
    result = measure(
        "model.fake", str(feature_table_path), inputs={"x": "f*"}, backend="fakes:FakeBackend", time_budget_s=1.0,
        call_timeout_s=7.0, worker_factory=lambda role, log_dir: Recording(make(role, log_dir), measured), clock=clock.seconds,
    )  # fmt: skip
    assert result.calls_per_block == 3
    by_call = {}
    for _, name, timeout in measured:
        by_call.setdefault(name, set()).add(timeout)
    # measure() takes the call timeout too, so its limits are a comparison's, named alike
    assert by_call["warm_up"] == {Timeout((1007.0, 1037.0), by_call_timeout=True)}
    for step in ("run_block", "run_window"):
        assert by_call[step] and all(limit.seconds == (pytest.approx(1007.003),) and limit.by_call_timeout for limit in by_call[step])

    called = measure(lambda row: row, rows=[1, 2, 3, 4], time_budget_s=0.01)
    assert called.calls_per_block == 3 and all(len(block) == 3 for block in called.blocks)
