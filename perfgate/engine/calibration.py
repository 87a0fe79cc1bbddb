"""calibrate(): a model against itself, for the whole time budget, with the same engine as
compare; per gated statistical check, the noise the run saw and the smallest change the
settings can detect (perfgate/judge/resolution.py says how it is computed).

A calibration is an A/A comparison that never stops early: its
samples say how noisy this machine is for this model, and its intervals' standard errors,
projected to the block pairs the time budget allows, give each check's minimum detectable
effect. It skips the cold starts and the output comparison, which an A/A pair does not need.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from perfgate.results import Report, Verdict

CALIBRATION_SCHEMA_VERSION = 2  # 2: "refused" became "coin_flip" (compare no longer refuses such a budget)


@dataclass(frozen=True)
class CheckResolution:
    metric: str
    where: str  # 'latency.p95 at batch 1'
    batch_size: int | None
    pairs: int  # block pairs measured
    ratio: float  # the model against itself: near 1
    ci: tuple[float, float]
    noise: float  # the standard deviation of one block pair's log ratio
    detectable: float  # the smallest change detected within the time budget (0.042: ±4.2 %)
    half_width: float  # the interval's half-width at the end of the time budget (0.034: ±3.4 %)
    budget: str | None
    resolvable: bool | None  # the budget is at least the detectable change
    coin_flip: bool  # the budget is inside that half-width: compare's verdict on it is a coin flip at best


@dataclass(frozen=True)
class Calibration:
    model: str
    data: str
    time_budget_s: float
    measure_seconds: float
    confidence: float
    checks: tuple[CheckResolution, ...]
    report: Report  # the A/A comparison behind it


def calibrate(model: str, data: str, *, progress: Callable[[str], None] | None = None, **options: Any) -> Calibration:
    """Measure ``model`` against itself on ``data``; ``options`` as for compare (budgets
    say which checks to calibrate: latency.p50 and latency.p95 by default).

    >>> calibration = calibrate("model.onnx", "data.parquet", time_budget_s=30)
    >>> [(c.where, round(c.detectable, 3)) for c in calibration.checks]
    [('latency.p50 at batch 1', 0.012), ('latency.p95 at batch 1', 0.031)]
    """
    from perfgate.config import CompareConfig

    options.setdefault("cold_starts", 0)
    options.setdefault("output_rows", 0)
    backend = options.pop("backend", None)
    headers = options.pop("headers", ())  # a served model's, sent on both sides' requests
    config = CompareConfig.from_options(model, model, data, reference_backend=backend, candidate_backend=backend,
                                        reference_headers=headers, candidate_headers=headers, **options)  # fmt: skip
    return run_calibration(config, progress=progress)


def run_calibration(
    config: Any,
    *,
    progress: Callable[[str], None] | None = None,
    worker_factory: Any = None,
    clock: Callable[[], float] = time.monotonic,
    plan_overrides: Any = None,
) -> Calibration:
    """A calibration from a CompareConfig whose reference and candidate are the same model
    (``worker_factory``, ``clock``, ``plan_overrides``: as for run_comparison)."""
    from perfgate.metrics import family_of
    from perfgate.engine.pipeline import run_comparison
    from perfgate.judge.resolution import pairs_in_budget, resolution

    report = run_comparison(
        config, progress=progress, worker_factory=worker_factory, clock=clock, plan_overrides=plan_overrides, calibrating=True
    )
    measured = report.run.measure_seconds if report.run is not None else 0.0
    checks = []
    for check in report.checks:
        if check.verdict is Verdict.INFO or not family_of(check).statistical:
            continue
        found = resolution(check, pairs_in_budget(check.blocks, measured, config.measuring.time_budget_s))
        if found is None:
            continue
        checks.append(
            CheckResolution(
                metric=str(check.metric), where=family_of(check).where(check), batch_size=check.batch_size,
                pairs=check.blocks, ratio=check.ratio, ci=check.ci, noise=found.noise, detectable=found.change,
                half_width=math.expm1(found.half_width), budget=check.budget, resolvable=found.resolvable,
                coin_flip=found.coin_flip,
            )
        )  # fmt: skip
    return Calibration(
        config.reference.path, config.data.file, float(config.measuring.time_budget_s), measured, config.judging.confidence,
        tuple(checks), report,
    )  # fmt: skip


def undecidable(report: Report) -> list[str]:
    """The gated checks a calibration could not estimate (too few samples), in words."""
    from perfgate.metrics import family_of

    return [
        f"{family_of(check).where(check)}: {check.reason}"
        for check in report.checks
        if check.verdict is not Verdict.INFO and check.ci is None and family_of(check).statistical
    ]


def render_calibration(calibration: Calibration) -> str:
    lines = [
        f"perfgate calibrate: {calibration.model} against itself on {calibration.data}",
        f"  {calibration.measure_seconds:.1f} s of measuring (--time-budget {calibration.time_budget_s:g}), "
        f"confidence {calibration.confidence:g}; detectable: the smallest change found 4 times in 5",
        "",
    ]
    rows = [["check", "block pairs", "A/A change", "noise / pair", "interval", "detectable", "budget", ""]]
    for item in calibration.checks:
        verdict = {True: "resolvable", False: "BELOW THE NOISE", None: ""}[item.resolvable]
        if item.coin_flip:
            verdict += " (a coin flip)"
        rows.append([
            item.where, str(item.pairs), f"{(item.ratio - 1) * 100:+.1f} %", f"{item.noise * 100:.1f} %",
            f"±{item.half_width * 100:.1f} %", f"±{item.detectable * 100:.1f} %", item.budget or "-", verdict,
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines += [f"  not estimated: {reason}" for reason in undecidable(calibration.report)]
    if any(item.resolvable is False for item in calibration.checks):
        lines += [
            "",
            "  a budget below its detectable change is decided less often than 4 runs in 5, and one inside the",
            "  interval no better than a coin flip: compare measures it to the end of its time budget and leaves",
            "  it inconclusive unless it fails clearly; widen it, or give it a longer --time-budget",
        ]
    return "\n".join(lines) + "\n"


def calibration_dict(calibration: Calibration) -> dict[str, Any]:
    return {
        "schema_version": CALIBRATION_SCHEMA_VERSION,
        "model": calibration.model,
        "data": calibration.data,
        "time_budget_s": calibration.time_budget_s,
        "measure_seconds": calibration.measure_seconds,
        "confidence": calibration.confidence,
        "checks": [
            {
                "metric": item.metric, "where": item.where, "batch_size": item.batch_size, "pairs": item.pairs,
                "change": item.ratio - 1.0, "ci": list(item.ci), "noise": item.noise, "half_width": item.half_width,
                "detectable": item.detectable, "budget": item.budget, "resolvable": item.resolvable, "coin_flip": item.coin_flip,
            }
            for item in calibration.checks
        ],  # fmt: skip
        "not_estimated": undecidable(calibration.report),
    }


def calibration_json(calibration: Calibration) -> str:
    return json.dumps(calibration_dict(calibration), indent=2)
