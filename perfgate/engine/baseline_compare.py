"""A candidate against a stored baseline (``perfgate compare --baseline``), and the
measurement that stores one (``perfgate run --save``).

The candidate is measured now, on its own, as the baseline was (``single.measure``, one
worker, blocks of calls until the tail has enough samples), on the same rows: their hash
must be the baseline's, or the comparison is refused. So must the environment's
fingerprint (``baseline.fingerprint``), unless ``allow_env_mismatch``; then the report
says what differs.

Such a comparison is weaker than a same-run one, and the report says so: the two models
never ran side by side, so whatever changed on the machine between the two runs (another
runner of the same type, a neighbour's load, the clock speed, the thermals) lands in the
ratio, and no pairing cancels it. Its intervals are therefore unpaired: each side's blocks
are bootstrapped on their own, the standard error of log(ratio) is sqrt(se_baseline² +
se_candidate²), and the interval is log(ratio) ± t(level, min(blocks) - 1) · se. The gated
checks share the confidence by Bonferroni (one look: the candidate is measured once).
Latency quantiles and the mean, and throughput, are compared; the other families need
both models in one run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from perfgate import __version__
from perfgate.backends import is_generative
from perfgate.backends.paths import shown
from perfgate.engine.baseline import Baseline, DataIdentity, data_identity, differences, fingerprint, now, read_baseline, save_measurements
from perfgate.judge.budgets import build_budgets
from perfgate.judge.checks import overall
from perfgate.engine.environment import capture
from perfgate.errors import UsageError, option
from perfgate.metrics import Budget, Scope, families, family_of
from perfgate.results import Check, DataReport, ModelReport, Report, Settings, Verdict
from perfgate.engine.single import measure
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S
from perfgate.stats import unpaired_interval  # noqa: F401  (importable from here, where it was defined first)

WEAKER = (
    "compared against a stored baseline ({path}, measured {created}), not in the same run: whatever changed on the "
    "machine between the two runs lands in the ratio and no pairing cancels it, so this is weaker evidence than a "
    "same-run comparison (intervals: unpaired block bootstrap of each run's blocks)"
)
Progress = Callable[[str], None]


def measure_baseline(
    model: str, data: str, *, inputs: Sequence[str] = (), batch_sizes: Sequence[int] = (1,), rows: int | None = None,
    seed: int = 0, threads: int = 1, device: str = "cpu", backend: str | None = None, time_budget_s: float = 60.0,
    confidence: float = 0.95, pad_value: float = 0.0, call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    progress: Progress | None = None, **testing: Any,
) -> Baseline:  # fmt: skip
    """Measure ``model`` at each batch size (``time_budget_s`` shared between them) and
    return the Baseline to store. ``testing``: ``worker_factory`` and ``clock`` (fake backends, virtual time)."""
    identity = data_identity(data, rows, seed)
    results = _measure_each(model, data, inputs, batch_sizes, rows, seed, threads, device, backend, time_budget_s,
                            confidence, pad_value, progress, dict(testing, call_timeout_s=call_timeout_s))  # fmt: skip
    settings = {"threads": threads, "device": device, "backend": backend, "inputs": list(inputs), "pad_value": pad_value,
                "time_budget_s": float(time_budget_s), "confidence": confidence, "batch_sizes": list(batch_sizes)}  # fmt: skip
    return save_measurements(results, identity, capture(), settings)


def compare_with_baseline(
    baseline_path: str, candidate: str, data: str | None = None, *, inputs: Sequence[str] = (),
    batch_sizes: Sequence[int] = (1,), max_latency_increase: str | float | None = None, budgets: Sequence[str] = (),
    rows: int | None = None, seed: int = 0, threads: int = 1, device: str = "cpu", backend: str | None = None,
    time_budget_s: float = 60.0, confidence: float = 0.95, pad_value: float = 0.0, allow_env_mismatch: bool = False,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S, progress: Progress | None = None, **testing: Any,
) -> Report:  # fmt: skip
    """``candidate`` measured now on the baseline's rows (``data`` defaults to the file the
    baseline names), judged against the stored samples; see the module's doc."""
    baseline = read_baseline(baseline_path)
    chosen = _budgets(max_latency_increase, budgets, batch_sizes)
    stored = {m.batch_size: m for m in baseline.measured}
    missing = [size for size in batch_sizes if size not in stored]
    if missing:
        raise UsageError(f"{option('batch_sizes')} {missing[0]}: the baseline {baseline_path!r} holds batch sizes "
                         f"{', '.join(map(str, sorted(stored)))} only")  # fmt: skip
    data = data or baseline.data.path
    identity = data_identity(data, rows, seed)
    if identity.sha256 != baseline.data.sha256:
        raise UsageError(_other_rows(data, identity, baseline.data))
    environment = capture()
    results = _measure_each(candidate, data, inputs, batch_sizes, rows, seed, threads, device, backend, time_budget_s,
                            confidence, pad_value, progress, dict(testing, call_timeout_s=call_timeout_s))  # fmt: skip
    backend_info = results[0].backend
    environment = replace(environment, frameworks={backend_info.framework: backend_info.framework_version})
    differ = differences(baseline.fingerprint, fingerprint(environment, backend_info))
    warnings = [WEAKER.format(path=baseline_path, created=baseline.created or "at an unknown time")]
    if differ:
        if not allow_env_mismatch:
            raise UsageError(f"the environment differs from the baseline's: {'; '.join(differ)} "
                             f"(pass {option('allow_env_mismatch')} to compare anyway)")  # fmt: skip
        warnings.append(f"the environment differs from the baseline's ({'; '.join(differ)}): compared anyway "
                        f"({option('allow_env_mismatch')}); the ratio includes that difference")  # fmt: skip
    checks = _checks(baseline, results, chosen, confidence, seed)
    verdict, reason = overall(checks)
    return Report(
        verdict=verdict,
        reason=reason + ("; against a stored baseline" if verdict is not Verdict.ERROR else ""),
        reference=replace(baseline.model, path=f"{baseline.model.path} (baseline {baseline_path})"),
        candidate=ModelReport(candidate, backend_info, results[0].inputs, 0.0, memory=dict(results[0].memory or {})),
        data=DataReport(identity.path, identity.rows_total, identity.rows_used, seed),
        settings=Settings(tuple(batch_sizes), tuple(str(b) for b in chosen), float(time_budget_s), confidence, seed,
                          threads, rows, pad_value, {}, device=device),  # fmt: skip
        environment=environment,
        run=None,  # no interleaved run: nothing of a same-run measurement's summary applies
        checks=checks,
        warnings=tuple(warnings),
        perfgate_version=__version__,
        created=now(),
    )


def _measure_each(model, data, inputs, batch_sizes, rows, seed, threads, device, backend, time_budget_s, confidence,
                  pad_value, progress, testing) -> list:  # fmt: skip
    if not batch_sizes:
        raise UsageError(f"{option('batch_sizes')} needs at least one batch size")
    if is_generative(str(model), backend):
        # a stored baseline holds one-shot calls' samples; a generative model's requests are
        # compared in the same run (interleaved), which a baseline from another run cannot be
        raise UsageError(
            f"{shown(str(model))} is a generative model: stored baselines hold one-shot models' calls; compare it "
            f"with the reference in the same run (perfgate compare -r REFERENCE -c {shown(str(model))}), or measure "
            f"it alone from Python (perfgate.measure(..., task=\"generate\"))"
        )
    share = float(time_budget_s) / len(batch_sizes) if isinstance(time_budget_s, (int, float)) else time_budget_s
    return [
        measure(model, data, inputs=inputs, batch_size=size, max_rows=rows, backend=backend, device=device,
                threads=threads, time_budget_s=share, confidence=confidence, seed=seed, pad_value=pad_value,
                progress=progress, **testing)  # fmt: skip
        for size in batch_sizes
    ]


def _budgets(max_latency_increase: Any, budgets: Sequence[str], batch_sizes: Sequence[int]) -> tuple[Budget, ...]:
    chosen = build_budgets(max_latency_increase, budgets, scope=Scope(tuple(batch_sizes)))
    for budget in chosen:
        if not family_of(budget.metric).judged_against_a_baseline:
            held = " and ".join(family.name for family in families() if family.judged_against_a_baseline)
            raise UsageError(f"budget {budget}: a stored baseline holds {held} samples only; "
                             f"{budget.metric.family} needs both models in the same run")  # fmt: skip
    return chosen


def _checks(baseline: Baseline, results: list, budgets: Sequence[Budget], confidence: float, seed: int) -> tuple[Check, ...]:
    by_name = {budget.metric.name: budget for budget in budgets}
    stored = {m.batch_size: m for m in baseline.measured}
    judged = [family for family in families() if family.judged_against_a_baseline]
    places = [(family, metric, budget, result)
              for result in results for family in judged
              for metric, budget in family.baseline_slots(by_name, result.batch_size)]  # fmt: skip
    gated = sum(1 for *_, budget, _ in places if budget is not None)
    level = 1.0 - (1.0 - confidence) / max(1, gated)
    return tuple(family.judge_against_baseline(metric, stored[result.batch_size], result, budget, level, seed)
                 for family, metric, budget, result in places)  # fmt: skip


def _other_rows(data: str, now: DataIdentity, stored: DataIdentity) -> str:
    """Why the rows differ from the baseline's: the settings that chose them where they
    differ, else the file's content (the same settings on an edited file)."""
    def chosen(rows: int | None, seed: int) -> str:
        return "all rows" if rows is None else f"{option('rows')} {rows}, {option('seed')} {seed}"

    same_choice = (chosen(now.rows, now.seed), now.rows_used) == (chosen(stored.rows, stored.seed), stored.rows_used)
    if same_choice:
        why = (f"the data's content differs from the baseline's (SHA-256 {now.sha256[:12]}… now, "
               f"{stored.sha256[:12]}… in the baseline, for the same {now.rows_used} rows: {chosen(now.rows, now.seed)})")
    else:
        why = (f"its {now.rows_used} rows ({chosen(now.rows, now.seed)}) are not the baseline's {stored.rows_used} "
               f"({chosen(stored.rows, stored.seed)} of {shown(stored.path)})")
    return f"{option('data')} {shown(data)}: {why}: a stored baseline is compared on the very rows it was measured on"


def describe(baseline: Baseline) -> str:
    """A measurement in a few lines: per batch size the latency quantiles and throughput."""
    from perfgate.formatting import format_duration, format_rate

    lines = [f"perfgate: {baseline.model.path} ({baseline.fingerprint.get('framework', '')} on "
             f"{baseline.fingerprint.get('device', '')}), {baseline.data.rows_used} rows of {baseline.data.path}"]  # fmt: skip
    for m in baseline.measured:
        samples = np.concatenate(m.blocks)
        p50, p95, p99 = (format_duration(float(np.quantile(samples, q))) for q in (0.5, 0.95, 0.99))
        rate = m.calls_per_block * m.batch_size * 1e9 / float(np.mean(m.windows)) if m.windows else 0.0
        lines.append(f"  batch {m.batch_size}: p50 {p50}, p95 {p95}, p99 {p99}, {format_rate(rate)} "
                     f"({samples.size} calls in {len(m.blocks)} blocks)")  # fmt: skip
    return "\n".join(lines) + "\n"
