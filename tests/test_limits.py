"""How long perfgate waits for each step of a model (in virtual time, in-process), and the
warning for a model whose memory grows block after block."""

from __future__ import annotations

import pytest

from fakes import FakeClock, in_process_factory
from perfgate.cli import _flag as cli_flag
from perfgate.config import CompareConfig
from perfgate.diagnostics import leak_per_block
from perfgate.errors import UsageError
from perfgate.pipeline import run_comparison
from perfgate.worker import Timeout
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S

MS = 1e6
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
    # timeout; the first call: the call timeout
    assert by_call[("candidate-cold-start-1", "cold_start")] == {Timeout((107.0, 7.0), by_call_timeout=True)}
    assert by_call[("reference-cold-start-1", "cold_start")] == {Timeout((107.0, 7.0), by_call_timeout=True)}
    # a block is 2 calls of 1 ms (about 2 ms of calls): 50x its 2 ms, plus the call timeout
    assert by_call[("reference", "run_block")] == {Timeout((7.1,), by_call_timeout=True)}
    assert by_call[("reference", "load")] == {600.0}  # loading has its own, fixed limit


def test_the_call_timeout_must_be_a_positive_number_of_seconds(feature_table_path):
    for bad in (0, -1.0, float("inf"), "60"):
        with pytest.raises(UsageError) as raised:
            CompareConfig.from_options("r.onnx", "c.onnx", str(feature_table_path), call_timeout_s=bad)
        assert "--call-timeout must be a positive number of seconds" in raised.value.in_words(cli_flag)
    assert CompareConfig("r.onnx", "c.onnx", "d.parquet").call_timeout_s == DEFAULT_CALL_TIMEOUT_S
    from perfgate.cli import compare

    (flag,) = [param for param in compare.params if param.name == "call_timeout"]
    assert flag.default == DEFAULT_CALL_TIMEOUT_S


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
