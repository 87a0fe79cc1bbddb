"""Reports for the renderer and action tests, made without timing anything real: whole
comparisons on fake backends in virtual time (every measurement a report can hold), and
reports edited by hand (hostile names, hundreds of checks, an error)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fakes import FakeClock, in_process_factory
from perfgate.config import CompareConfig
from perfgate.errors import ModelLoadError
from perfgate.engine.pipeline import error_report, run_comparison
from perfgate.results import Check, Metric, Report, Verdict

MS = 1e6
MiB = 2**20
HOSTILE = "<img src=x onerror=alert(1)>|"


def sized_table(directory: Path, size_column: str = "n") -> Path:
    """f0 doubles as the size column: a fake model's cost grows with it."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 101, 300)
    columns = {"f0": sizes.astype(np.float64), size_column: sizes, **{f"f{i}": rng.standard_normal(300) for i in range(1, 4)}}
    path = directory / "sized.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def cost(intercept_ns: float, per_unit_ns: float, sigma: float = 0.05):
    return lambda rng, clock, feed: (intercept_ns + per_unit_ns * float(feed["x"][:, 0].sum())) * rng.lognormal(0, sigma)


def fake_run(data: Path, candidate_slowdown: float = 1.0, **options) -> Report:
    """Two fake models on ``data``: the candidate ``candidate_slowdown`` times slower per call
    and 40 MiB larger; batch sizes 1 and 4, cold starts, load and size analysis by default."""
    clock = FakeClock()
    options.setdefault("batch_sizes", (1, 4))
    options.setdefault("cold_starts", 2)
    options.setdefault("rates", (200,))
    options.setdefault("size_column", "n")
    options.setdefault("time_budget_s", 60.0)  # p95 at batch 4 gets its 90 calls beside the load episodes
    config = CompareConfig.from_options(
        "models/reference.fake", "models/candidate.fake", str(data), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", **options,
    )  # fmt: skip
    latencies = {"reference": cost(200_000, 2_000), "candidate": cost(200_000 * candidate_slowdown, 2_000 * candidate_slowdown)}
    per_role = {"reference": {"load_ns": 0.2e9}, "candidate": {"load_ns": 0.3e9, "model_bytes": 40 * MiB}}
    factory = in_process_factory(clock, latencies, per_role=per_role)
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def failed_run(directory: Path) -> Report:
    return fake_run(sized_table(directory), candidate_slowdown=1.6, budgets=["throughput:-10%"])


def passed_run(directory: Path) -> Report:
    return fake_run(sized_table(directory), candidate_slowdown=1.0)


def hostile(report: Report) -> Report:
    """``report`` with every user-derived name replaced by markup: paths, the column and
    input names, the size column, a load label, and one check's metric."""
    name = HOSTILE

    def model(side):
        inputs = tuple(dataclasses.replace(i, input=name, columns=(name, "f1")) for i in side.inputs)
        return dataclasses.replace(side, path=f"{name}/model.onnx", inputs=inputs)

    checks = list(report.checks)
    checks[0] = dataclasses.replace(checks[0], metric=Metric(name, "hostile"), scenario=name)
    sizes = tuple(dataclasses.replace(s, column=name) for s in report.sizes)
    settings = dataclasses.replace(report.settings, inputs={name: name}, size_column=name)
    return dataclasses.replace(
        report, reference=model(report.reference), candidate=model(report.candidate),
        data=dataclasses.replace(report.data, path=f"{name}.parquet"), checks=tuple(checks), sizes=sizes,
        settings=settings, warnings=report.warnings + (f"column {name} looked odd",), reason=f"{name}: {report.reason}",
    )  # fmt: skip


def many_checks(report: Report, count: int = 200, name_length: int = 400) -> Report:
    """``report`` with ``count`` gated checks with long hostile names, a third of them failed."""
    template = next(c for c in report.checks if c.verdict is not Verdict.INFO)
    checks = []
    for index in range(count):
        verdict = (Verdict.FAIL, Verdict.PASS, Verdict.INCONCLUSIVE)[index % 3]
        label = f"custom.{index}.{(HOSTILE * name_length)[:name_length]}"
        checks.append(dataclasses.replace(template, metric=Metric(label, "custom"), verdict=verdict,
                                          ratio=1.0 + index / 100, reason=f"{label}: {verdict.value}"))  # fmt: skip
    return dataclasses.replace(report, checks=tuple(checks) + report.checks, verdict=Verdict.FAIL)


def errored() -> Report:
    return error_report(ModelLoadError(f"candidate: cannot load model '{HOSTILE}.onnx' with onnxruntime: bad"))


def one_check(verdict: Verdict, ratio: float = 1.2, **fields) -> Check:
    """A latency check built by hand."""
    values = dict(metric=Metric("latency.p50", "latency", quantile=0.5), batch_size=1, verdict=verdict,
                  reason=f"{verdict.value} reason", reference=1e6, candidate=1e6 * ratio, ratio=ratio,
                  ci=(ratio - 0.05, ratio + 0.05), ci_level=0.975, n_reference=100, n_candidate=100, blocks=8,
                  budget="+15%", limit=1.15)  # fmt: skip
    values.update(fields)
    return Check(**values)


UNDECIDED = "insufficient samples: 352 per model, latency.p99 needs 459"


def with_undecided(report: Report, reason: str = UNDECIDED) -> Report:
    """``report`` with a latency.p99 that has no interval (too few samples), first, and its
    cold start measured once per model (no interval either)."""
    p99 = one_check(Verdict.INCONCLUSIVE, metric=Metric("latency.p99", "latency", quantile=0.99), reason=reason,
                    ci=None, ci_level=None, reference=None, candidate=None)  # fmt: skip
    p99 = dataclasses.replace(p99, ratio=None)
    start = next(c for c in report.checks if c.metric == "cold_start")
    one_start = dataclasses.replace(start, ci=None, ci_level=None, reason="one start per model: no interval")
    checks = [p99] + [one_start if c is start else c for c in report.checks]
    return dataclasses.replace(report, checks=tuple(checks), verdict=Verdict.FAIL)
