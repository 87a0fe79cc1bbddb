"""The real-model rows of docs/decision-quality.md (``decision_quality.py --real-reps N``):
subprocess workers, real time, so run it alone on a quiet machine.

Two pairs: the fixtures' A/A pair (mlp_reference.onnx against mlp_aa.onnx: the same
architecture, other weights; right verdict pass), and the reference fixture against
itself made 2x slower by benchmarks/slowdown.py (the factor first calibrated, in
interleaved blocks in one process, until the measured p50 ratio is 2; right verdict fail).
Each run is perfgate's full ``compare`` (fresh workers, loading included in its time) and,
beside it, the naive rule as pytest-benchmark applies it: each model in its own fresh
process, one after the other, NAIVE_CALLS calls each, "regression" when the ratio of
means is over 1.15.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from perfgate.backends.base import BackendOptions  # noqa: E402
from perfgate.data.batches import build_batches  # noqa: E402
from perfgate.config import CompareConfig  # noqa: E402
from perfgate.data.dataset import ParquetDataset  # noqa: E402
from perfgate.engine.environment import capture  # noqa: E402
from perfgate.data.inputs import bind_inputs  # noqa: E402
from perfgate.engine.pipeline import run_comparison  # noqa: E402
from perfgate.worker import LoadModel, LoadRequest, RunBlock, SetFeeds, SubprocessWorker, WarmUpModel, worker_cpus  # noqa: E402

FIXTURES = ROOT / "fixtures"
DATA = str(FIXTURES / "features.parquet")
BUDGET = 1.15
NAIVE_CALLS = 2000  # one pass over the fixture data, as a benchmark suite would time it
PAIRS = {
    "A/A (mlp_reference vs mlp_aa)": (FIXTURES / "mlp_reference.onnx", FIXTURES / "mlp_aa.onnx", None, 1.0),
    "2x (mlp_reference slowed by slowdown.py)": (FIXTURES / "mlp_reference.onnx", FIXTURES / "mlp_reference.onnx",
                                                 "slowdown:SlowedOnnxRuntime", 2.0),
}  # fmt: skip


def fixture_feeds() -> list:
    from perfgate.tensors import TensorSpec

    dataset = ParquetDataset(DATA)
    spec = TensorSpec("features", "float32", (None, 16))
    bindings = bind_inputs({"naive": [spec]}, dataset.schema, {"features": "f*"}, {})["naive"]
    table = dataset.read(bindings[0].columns, dataset.select_rows(None, 0))
    return list(build_batches(table, bindings, [spec], 1).feeds)


def measured_slowdown(factor: float, feeds: list, blocks: int = 150) -> float:
    """p50(slowed) / p50(plain) of the reference fixture, interleaved, in this process."""
    from perfgate.worker import WorkerCore

    os.environ["PERFGATE_BENCH_SLOWDOWN"] = str(factor)
    cores = {}
    for name in ("onnxruntime", "slowdown:SlowedOnnxRuntime"):
        core = WorkerCore()
        core.load(LoadRequest(name, str(FIXTURES / "mlp_reference.onnx"), BackendOptions()))
        core.set_feeds(1, feeds)
        core.warm_up(1, 100, 0.3, 10.0)
        cores[name] = core
    samples: dict[str, list[int]] = {name: [] for name in cores}
    rng = np.random.default_rng(0)
    for block in range(blocks):
        for name in rng.permutation(list(cores)):
            samples[name].extend(cores[name].run_block(1, block * 200, 200))
    return float(np.median(samples["slowdown:SlowedOnnxRuntime"]) / np.median(samples["onnxruntime"]))


def calibrated_factor(target: float, feeds: list, sessions: int = 6) -> tuple[float, float]:
    """The factor whose measured slowdown is ``target`` on average (two sessions of one
    model differ by a few percent, so each step averages over ``sessions``), and that average."""
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity is not None:
        os.sched_setaffinity(0, set(worker_cpus(1) or affinity))
    factor = target
    for _ in range(2):
        factor *= target / float(np.mean([measured_slowdown(factor, feeds) for _ in range(sessions)]))
    measured = float(np.mean([measured_slowdown(factor, feeds) for _ in range(sessions)]))
    if affinity is not None:
        os.sched_setaffinity(0, affinity)
    return factor, measured


def naive_sequential(reference: str, candidate: str, backend: str | None, feeds: list) -> tuple[float, float]:
    """mean(candidate) / mean(reference), each in its own fresh process, one after the
    other; and the seconds the candidate's process took, start to verdict."""
    means, seconds = [], 0.0
    with tempfile.TemporaryDirectory() as log_dir:
        for role, path, name in (("reference", reference, "onnxruntime"), ("candidate", candidate, backend or "onnxruntime")):
            began = time.monotonic()
            worker = SubprocessWorker(role, log_dir)
            worker.start(1, worker_cpus(1))
            try:
                worker.call(LoadModel(LoadRequest(name, path, BackendOptions(), tuple(sys.path))), timeout=120)
                worker.call(SetFeeds(1, feeds), timeout=120)
                worker.call(WarmUpModel(1, 10, 0.2, 10.0), timeout=120)
                means.append(np.mean(worker.call(RunBlock(1, 0, NAIVE_CALLS), timeout=120)))
            finally:
                worker.close()
            seconds = time.monotonic() - began
    return means[1] / means[0], seconds


def real_section(reps: int, time_budget_s: float) -> list[str]:
    env = capture()
    feeds = fixture_feeds()
    lines = [
        "## Real models",
        "",
        f"Subprocess workers in real time on {env.cpu} ({env.usable_cpus} usable CPUs), {reps} runs per pair, "
        f"nothing else running; perfgate's time includes starting both workers and loading. The naive rule is "
        f"pytest-benchmark's: each model in its own fresh process, one after the other, {NAIVE_CALLS} calls each, "
        "fail when the ratio of means is over 1.15 (its time: the candidate's process).",
        "",
        "| pair (right) | perfgate pass / fail / inconcl. | time to verdict p50 / p95 | naive pass / fail | naive time p50 |",
        "|---|---|---|---|---|",
    ]
    for label, (reference, candidate, backend, target) in PAIRS.items():
        if backend is not None:
            factor, measured = calibrated_factor(target, feeds)
            os.environ["PERFGATE_BENCH_SLOWDOWN"] = str(factor)
            label += f", measured {measured:.3f}x"
        verdicts, naive, seconds, naive_seconds = Counter(), Counter(), [], []
        for rep in range(reps):
            config = CompareConfig.from_options(
                str(reference), str(candidate), DATA, inputs=["features=f*"], seed=rep, cold_starts=0,
                time_budget_s=time_budget_s, candidate_backend=backend,
            )  # fmt: skip
            began = time.monotonic()
            verdicts[run_comparison(config).verdict.value] += 1
            seconds.append(time.monotonic() - began)
            ratio, took = naive_sequential(str(reference), str(candidate), backend, feeds)
            naive["fail" if ratio > BUDGET else "pass"] += 1
            naive_seconds.append(took)
            print(f"  {label} run {rep + 1}/{reps}: perfgate {seconds[-1]:.1f} s; naive ratio {ratio:.3f}", file=sys.stderr)
        right = "fail" if target > BUDGET else "pass"
        p50, p95 = np.quantile(seconds, [0.5, 0.95])
        lines.append(
            f"| {label} ({right}) | {verdicts['pass']} / {verdicts['fail']} / {verdicts['inconclusive']} | "
            f"{p50:.1f} / {p95:.1f} s | {naive['pass']} / {naive['fail']} | {np.median(naive_seconds):.1f} s |"
        )
    return lines + [""]
