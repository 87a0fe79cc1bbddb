"""Judge a saved report again, from its stored samples, with the same or other budgets.

A report keeps every raw sample (latency blocks, throughput windows, load episodes,
cold starts, memory readings, each batch's size, a generative model's requests) and how
far apart the two models' outputs (or greedy answers) were, so a verdict can be reached again
without measuring: with the report's own budgets it is the verdict the run reached; with
a tighter budget it may be another. The interval level is the one of the run's last look,
split over the new set of gated checks. Stored baselines and merged CI-matrix reports
build on this.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import numpy as np

from perfgate.backends.base import BackendOptions
from perfgate.judge.budgets import Budget, build_budgets, check_measured, parse_budget
from perfgate.judge.checks import Observations, evaluate, overall, with_mann_whitney
from perfgate.errors import BudgetError, UsageError
from perfgate.metrics import Scope
from perfgate.judge.resolution import Words, explain_unresolved, flag_words
from perfgate.results import SIDES, Report, Verdict


def judge_again(
    report: Report,
    budgets: Iterable[str | Budget] = (),
    *,
    max_latency_increase: str | float | None = None,
    words: Words = flag_words,
) -> Report:
    """``report`` with its checks and verdict judged again.

    ``budgets`` replace the report's budgets for their metrics or add to them; with
    ``max_latency_increase`` the budgets start from the defaults at that limit instead of
    from the report's own, as ``compare`` would build them. A budget below what the run's
    samples can resolve is inconclusive, its reason saying what would resolve it, with the
    options named in ``words`` (the command line's flags; ``perfgate.judge.resolution.python_words``
    for Python).
    """
    settings, run = report.settings, report.run
    if report.parts:
        raise UsageError("a merged report is judged again part by part: judge each part's report again, then merge them")
    if run is None and report.verdict is not Verdict.ERROR:
        raise UsageError("a comparison against a stored baseline keeps its checks, not both runs' samples: "
                         "judge it again by comparing again (compare --baseline) with the new budgets")  # fmt: skip
    if settings is None or run is None or report.verdict is Verdict.ERROR:
        raise UsageError("this report holds no measurements to judge again (its verdict is error)")
    scope = Scope(
        batch_sizes=settings.batch_sizes,
        loads=bool(settings.loads),
        size_column=settings.size_column,
        cold_starts=min((len(records) for records in report.cold_starts.values()), default=0),
        on_gpu=BackendOptions(settings.device).on_gpu,
        outputs=report.outputs is not None or report.answers is not None,
        generate=settings.task == "generate",
    )
    given = [item if isinstance(item, Budget) else parse_budget(item) for item in budgets]
    if max_latency_increase is not None:
        chosen = build_budgets(max_latency_increase, given, scope=scope)
    else:
        saved = {budget.metric.name: budget for budget in map(parse_budget, settings.budgets)}
        named = [budget.metric.name for budget in given]
        duplicate = next((name for name in named if named.count(name) > 1), None)
        if duplicate:
            raise BudgetError(f"budget for {duplicate} is given twice")
        saved.update({budget.metric.name: budget for budget in given})
        chosen = build_budgets(None, list(saved.values()), scope=scope)
        chosen = tuple(budget for budget in chosen if budget.metric.name in saved)
    check_measured(chosen, scope)
    observed = observations_of(report)
    alpha = 1.0 - settings.confidence
    evaluation = with_mann_whitney(evaluate(observed, chosen, alpha=alpha, look=run.looks, seed=settings.seed), observed, alpha)
    checks = explain_unresolved(evaluation.checks, run.measure_seconds, settings.time_budget_s, words, instances=settings.instances)
    verdict, reason = overall(checks)
    if verdict is Verdict.INCONCLUSIVE:
        reason += f"; after {run.measure_seconds:.1f} s of measuring ({words('time_budget_s', f'{settings.time_budget_s:g}')})"
    return replace(
        report,
        verdict=verdict,
        reason=reason,
        checks=checks,
        settings=replace(settings, budgets=tuple(str(budget) for budget in chosen)),
    )


def observations_of(report: Report) -> Observations:
    """What the report's run measured, as the checks take it."""
    settings = report.settings
    return Observations(
        series=report.series,
        loads=report.loads,
        cold_starts={side: tuple(r.total_seconds for r in records) for side, records in report.cold_starts.items()},
        memory={side: getattr(report, side).memory for side in SIDES if getattr(report, side) is not None},
        sizes={s.batch_size: np.asarray(s.batch_totals, dtype=np.float64) for s in report.sizes if s.batch_totals},
        size_column=settings.size_column if any(s.batch_totals for s in report.sizes) else None,
        memory_floor=settings.memory_floor,
        outputs=report.outputs,
        generations=report.generations,
        answers=report.answers,
    )
