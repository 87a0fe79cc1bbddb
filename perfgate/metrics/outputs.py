"""outputs.*: do the two models give the same answers? Both models' outputs on the same
rows (compared outside the timed region, see ``perfgate.engine.outputs``), per output:

    outputs.max_abs_diff     the largest |reference - candidate| over every value   <=1e-3
    outputs.mean_abs_diff    the mean of |reference - candidate|                     <=1e-4
    outputs.cosine           each row's cosine similarity, mean over rows           >=0.99
    outputs.cosine_min       the lowest row's cosine similarity                     >=0.9
    outputs.top1_agreement   the share of argmaxes (over the last axis) that agree  >=99%
    outputs.non_finite       NaN and Inf values in the candidate's outputs: always gated, at 0

and for generative models (generate mode), their greedy answers to the same prompts:

    outputs.token_agreement  the share of prompts answered identically              >=95%

Each is exact on the rows compared, so it is decided without a test (statistical=False),
against a threshold on its value rather than a ratio. Without a budget the values are
reported with verdict info, except ``outputs.non_finite``: a candidate returning NaN or
Inf where the reference returns numbers is broken, and fails whatever the budgets say.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

from perfgate.errors import BudgetError, option
from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot, bind, budget_fields, undecided
from perfgate.measurements import GenerationsCompared, OutputDifference
from perfgate.results import Check, Metric, Verdict

# metric -> (the OutputDifference field, higher is better, the range its threshold may take)
VALUES = {
    "outputs.max_abs_diff": ("max_abs_diff", False, (0.0, math.inf)),
    "outputs.mean_abs_diff": ("mean_abs_diff", False, (0.0, math.inf)),
    "outputs.cosine": ("cosine", True, (-1.0, 1.0)),
    "outputs.cosine_min": ("cosine_min", True, (-1.0, 1.0)),
    "outputs.top1_agreement": ("top1_agreement", True, (0.0, 1.0)),
}
NON_FINITE = "outputs.non_finite"
TOKEN_AGREEMENT = "outputs.token_agreement"  # generate mode (perfgate.engine.answers)
PERCENTAGES = ("outputs.top1_agreement", TOKEN_AGREEMENT)
EXAMPLES = {
    "outputs.max_abs_diff": "<=1e-3",
    "outputs.mean_abs_diff": "<=1e-4",
    "outputs.cosine": ">=0.99",
    "outputs.cosine_min": ">=0.9",
    "outputs.top1_agreement": ">=99%",
    TOKEN_AGREEMENT: ">=95%",
}
_THRESHOLD = re.compile(r"^(>=|<=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)$")


def place(index: int) -> tuple[int, ...]:
    """Outputs come after the per-model checks, in the models' output order."""
    return (3, index)


class Outputs(Family):
    name = "outputs"
    forms = "outputs.max_abs_diff, outputs.mean_abs_diff, outputs.cosine, outputs.cosine_min, outputs.top1_agreement, " + TOKEN_AGREEMENT
    order = 6
    statistical = False
    needs_same_rows = True
    resolvable_by_noise = False

    def parse(self, name: str) -> Metric | None:
        if name in VALUES:
            return Metric(name, self.name, higher_is_better=VALUES[name][1])
        if name == NON_FINITE:
            return Metric(name, self.name)
        if name == TOKEN_AGREEMENT:
            return Metric(name, self.name, higher_is_better=True)
        return None

    def parse_budget(self, metric: Metric, limit: str, option_text: str) -> Budget:
        if metric.name == NON_FINITE:
            raise BudgetError(f"{option_text}: {NON_FINITE} takes no budget: a candidate returning NaN or Inf always fails")
        example = f"{metric.name}:{EXAMPLES[metric.name]}"
        match = _THRESHOLD.match(limit.strip())
        if match is None:
            raise BudgetError(f"{option_text}: write an outputs budget as a comparison and a number, e.g. {example}")
        comparison, number, percent = match.groups()
        at_least = comparison == ">="
        if at_least != metric.higher_is_better:
            direction = "higher" if metric.higher_is_better else "lower"
            raise BudgetError(f"{option_text}: {metric.name} is better {direction}, so its budget is a bound like {example}")
        if percent and metric.name not in PERCENTAGES:
            raise BudgetError(f"{option_text}: only {' and '.join(PERCENTAGES)} take a percentage; e.g. {example}")
        value = float(number) / (100.0 if percent else 1.0)
        low, high = VALUES[metric.name][2] if metric.name in VALUES else (0.0, 1.0)
        if not low <= value <= high:
            shown = f"{low:g} to {high:g}" if math.isfinite(high) else f"{low:g} or more"
            raise BudgetError(f"{option_text}: {metric.name} is {shown}, so {limit.strip()!r} cannot be met or cannot fail")
        return Budget(metric, None, threshold=value, at_least=at_least, percent=bool(percent))

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        if (metric.name == TOKEN_AGREEMENT) != scope.generate:
            return (f"{metric.name} compares generative models' answers ({option('task', 'generate')})" if not scope.generate
                    else f"{metric.name} compares one-shot outputs; a generative model's is {TOKEN_AGREEMENT}")  # fmt: skip
        if not scope.outputs:
            return f"outputs are not compared with {option('output_rows', 0)}"
        return None

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        if observations.generations:
            metric = self.parse(TOKEN_AGREEMENT)
            return [Slot(metric, budgets.get(TOKEN_AGREEMENT), bind(_answers_check, observations.answers, metric), place(0))]
        compared = observations.outputs
        budgeted = [name for name in VALUES if name in budgets]
        if compared is None or not compared.outputs:
            why = "outputs were not compared" if compared is None else f"no outputs compared: {compared.note}"
            return [Slot(self.parse(name), budgets[name], bind(_not_compared, self.parse(name), why), place(0)) for name in budgeted]
        slots = []
        classes = [difference for difference in compared.outputs if difference.top1_agreement is not None]
        for index, difference in enumerate(compared.outputs):
            for name, (field_name, _, _) in VALUES.items():
                # a top-1 budget is on the outputs that have classes; undecided only where none has
                if field_name == "top1_agreement" and difference.top1_agreement is None and (classes or name not in budgets):
                    continue
                metric = self.parse(name)
                slots.append(Slot(metric, budgets.get(name), bind(_check, difference, metric), place(index)))
            # NaN/Inf fed on purpose (allow_nonfinite) may well come out again: reported, not judged
            guard = None if compared.nonfinite_inputs else Budget(self.parse(NON_FINITE), None, threshold=0.0)
            slots.append(Slot(self.parse(NON_FINITE), guard, bind(_non_finite_check, difference, self.parse(NON_FINITE)), place(index)))
        return slots

    def place(self, check: Check) -> str:
        return "" if check.metric == TOKEN_AGREEMENT else f"output {check.scenario}"

    def format_value(self, value: float | None, check: Check) -> str:
        if value is None:
            return "-"
        if check.metric == NON_FINITE:
            return f"{value:.0f}"
        if check.metric in PERCENTAGES:
            return f"{value * 100:.4g}%"
        if check.metric in ("outputs.cosine", "outputs.cosine_min"):
            return f"{value:.6g}"
        return f"{value:.3g}"


def _common(difference: OutputDifference, metric: Metric, budget: Budget | None) -> dict:
    return dict(metric=metric, batch_size=None, unit="values" if metric == NON_FINITE else "", scenario=difference.label,
                higher_is_better=metric.higher_is_better, n_reference=difference.rows, n_candidate=difference.rows,
                blocks=0, **budget_fields(budget))  # fmt: skip


def _not_compared(metric: Metric, why: str, *, budget, level, seed) -> Check:
    common = dict(metric=metric, batch_size=None, unit="", higher_is_better=metric.higher_is_better, n_reference=0,
                  n_candidate=0, blocks=0, **budget_fields(budget))  # fmt: skip
    return undecided(common, budget, why)


def _check(difference: OutputDifference, metric: Metric, *, budget, level, seed) -> Check:
    field_name = VALUES[metric.name][0]
    value = getattr(difference, field_name)
    common = _common(difference, metric, budget)
    if value is None:
        if field_name == "top1_agreement":
            why = f"output {difference.label} has no class axis (a last axis of 2 or more) to take the argmax of"
        else:
            why = f"output {difference.label} has no values finite in both models' outputs"
        return undecided(common, budget, why)
    described = f"{_described(metric, value)}{_worst_row(difference, field_name)} on {difference.rows} rows"
    fields = dict(reference=None, candidate=float(value), ratio=None, ci=None, ci_level=None)
    if budget is None:
        return Check(verdict=Verdict.INFO, reason=described, **fields, **common)
    within = value >= budget.threshold if budget.at_least else value <= budget.threshold
    if within:
        return Check(verdict=Verdict.PASS, reason=f"{described}, within the {budget.limit_text} budget", **fields, **common)
    side = "under" if budget.at_least else "over"
    return Check(verdict=Verdict.FAIL, reason=f"{described}, {side} the {budget.limit_text} budget", **fields, **common)


def _answers_check(answers: GenerationsCompared | None, metric: Metric, *, budget, level, seed) -> Check:
    common = dict(metric=metric, batch_size=None, unit="", scenario="greedy answers", higher_is_better=True,
                  n_reference=0 if answers is None else len(answers.exact), n_candidate=0 if answers is None else len(answers.exact),
                  blocks=0, **budget_fields(budget))  # fmt: skip
    if answers is None or not answers.exact:
        return undecided(common, budget, "answers were not compared")
    value = answers.agreement
    differing = answers.mean_first_difference
    described = (
        f"{value * 100:.4g}% of {len(answers.exact)} prompts answered alike ({answers.max_new_tokens} new tokens each"
        + ("" if differing is None else f"; the others first differ at {answers.unit[:-1]} {differing:.3g} on average")
        + ")"
    )
    fields = dict(reference=None, candidate=float(value), ratio=None, ci=None, ci_level=None)
    if budget is None:
        return Check(verdict=Verdict.INFO, reason=described, **fields, **common)
    if value >= budget.threshold:
        return Check(verdict=Verdict.PASS, reason=f"{described}, within the {budget.limit_text} budget", **fields, **common)
    return Check(verdict=Verdict.FAIL, reason=f"{described}, under the {budget.limit_text} budget", **fields, **common)


def _non_finite_check(difference: OutputDifference, metric: Metric, *, budget, level, seed) -> Check:
    count = difference.non_finite.get("candidate", 0)
    common = _common(difference, metric, budget)
    fields = dict(reference=float(difference.non_finite.get("reference", 0)), candidate=float(count), ratio=None, ci=None,
                  ci_level=None)  # fmt: skip
    if budget is None:
        return Check(verdict=Verdict.INFO, reason=f"{count} NaN or Inf values in the candidate's output {difference.label} "
                     f"(NaN or Inf inputs were allowed)", **fields, **common)  # fmt: skip
    if count <= budget.threshold:
        reason = f"no NaN or Inf in the candidate's output {difference.label} on {difference.rows} rows"
        return Check(verdict=Verdict.PASS, reason=reason, **fields, **common)
    return Check(verdict=Verdict.FAIL, reason=non_finite_reason("candidate", difference), **fields, **common)


def non_finite_reason(side: str, difference: OutputDifference, model: str = "") -> str:
    """'the candidate returned 12 NaN values in output scores (of 2048 on 256 rows; the first on row 17)'."""
    count, nan = difference.non_finite.get(side, 0), difference.nan.get(side, 0)
    kinds = " and ".join(part for part in (nan and f"{nan} NaN", count - nan and f"{count - nan} Inf") if part)
    name = difference.reference_output if side == "reference" else difference.candidate_output
    return (
        f"the {side}{f' model {model!r}' if model else ''} returned {kinds} value{'s' if count != 1 else ''} in output "
        f"{name} (of {difference.values} on {difference.rows} rows; the first on row {difference.first_non_finite_row.get(side)})"
    )


def _described(metric: Metric, value: float) -> str:
    if metric == "outputs.top1_agreement":
        return f"top-1 agreement {value * 100:.4g}%"
    if metric == "outputs.cosine":
        return f"mean cosine {value:.6g}"
    if metric == "outputs.cosine_min":
        return f"lowest cosine {value:.6g}"
    if metric == "outputs.max_abs_diff":
        return f"largest |difference| {value:.3g}"
    return f"mean |difference| {value:.3g}"


def _worst_row(difference: OutputDifference, field_name: str) -> str:
    row = {"max_abs_diff": difference.max_abs_diff_row, "cosine_min": difference.cosine_min_row}.get(field_name)
    return "" if row is None else f" (row {row})"


FAMILY = Outputs()
