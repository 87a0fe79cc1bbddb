"""How often does the gate get it right, how fast, and how do the naive rules do beside it?

Writes docs/decision-quality.md. For each true ratio (1.00 ... 2.00) at a +15 % budget
and each regime of a simulated runner (quiet; a bursty neighbour; occasional 10x
outliers, see simulated_machine.py), ``--trials`` comparisons, each judged three ways on
the same simulated machine:

* perfgate: ``pipeline.run_comparison`` (warm-up, interleaved block pairs, looks, checks)
  on in-process fake models in virtual time; its time to verdict is all in (worker start
  and load, warm-up, measuring);
* pytest-benchmark ``--benchmark-compare-fail=mean:15%``: the reference's stored run,
  the candidate's run later, each as many calls as fill pytest-benchmark's default
  1 s, "regression" when the ratio of means is over 1.15;
* github-action-benchmark: one number per model per CI run (a 200-call timing loop's
  mean, one model after the other), an alert when their ratio is over 1.15.

At a 15 % budget the right verdict is pass up to 1.10 and fail from 1.20 on; 1.15 itself
is not in the table (either answer is right there).

``--real-reps N`` adds the real models (subprocess workers, real time; run it alone on a
quiet machine): the fixtures' A/A pair and the reference fixture against itself made 2x
slower by benchmarks/slowdown.py (the factor calibrated first), N runs each.

    python benchmarks/decision_quality.py [--trials 100] [--workers 2] [--real-reps 0]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulated_machine import (  # noqa: E402
    ACTION_BENCHMARK_CALLS, BUDGET, BURST_PERIOD_S, BURST_SLOWDOWN, JITTER_SIGMA, OUTLIER_FACTOR, OUTLIER_RATE, REGIMES,
    ROOT, WORKER_START_S, Outcome, Trial, run_trial, spend_alpha_over_k_squared, write_features,
)  # fmt: skip
from perfgate.engine.runner import MeasurementPlan  # noqa: E402 (after simulated_machine, which puts this repository first on sys.path)

RATIOS = (1.00, 1.05, 1.10, 1.20, 1.25, 1.50, 2.00)
RULES = (("perfgate", "perfgate"), ("pytest-benchmark mean:15%", "pytest_benchmark"),
         ("github-action-benchmark 115%", "action_benchmark"))  # fmt: skip
OUTPUT = ROOT / "docs" / "decision-quality.md"


def right_verdict(ratio: float) -> str:
    return "fail" if ratio > BUDGET else "pass"


def _run(args: tuple[Trial, str, dict]) -> tuple[Trial, Outcome]:
    trial, data, overrides = args
    overrides = dict(overrides)
    if overrides.pop("alpha_k_squared", 0):
        spend_alpha_over_k_squared()
    return trial, run_trial(trial, data, overrides or None)


def simulate(trials: int, workers: int, typical_ns: float, time_budget_s: float, overrides: dict,
             regimes=REGIMES, ratios=RATIOS) -> dict:  # fmt: skip
    """Outcomes by (regime, ratio); trial i of every cell uses machine seed i."""
    with tempfile.TemporaryDirectory() as folder:
        data = str(write_features(Path(folder) / "features.parquet"))
        jobs = [(Trial(regime, ratio, seed, typical_ns, time_budget_s), data, overrides)
                for regime in regimes for ratio in ratios for seed in range(trials)]  # fmt: skip
        results: dict = defaultdict(list)
        with ProcessPoolExecutor(workers) as pool:
            for done, (trial, outcome) in enumerate(pool.map(_run, jobs, chunksize=4), 1):
                results[(trial.regime, trial.ratio)].append(outcome)
                if done % 100 == 0:
                    print(f"  {done}/{len(jobs)} trials", file=sys.stderr, flush=True)
    return results


def rates(verdicts: list[str]) -> str:
    counts, n = Counter(verdicts), len(verdicts)
    return " / ".join(f"{100 * counts[v] / n:.0f}" for v in ("pass", "fail", "inconclusive"))


def seconds(values: list[float]) -> str:
    p50, p95 = np.quantile(values, [0.5, 0.95])
    return f"{p50:.1f} / {p95:.1f} s"


def simulated_table(results: dict, regime: str) -> list[str]:
    lines = [
        "| true ratio (right) | perfgate pass / fail / inconcl. % | wrong | time to verdict p50 / p95 "
        "| pytest-benchmark pass / fail % | wrong | time | github-action-benchmark pass / fail % | wrong | time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ratio in RATIOS:
        outcomes = results.get((regime, ratio))
        if not outcomes:
            continue
        right = right_verdict(ratio)
        wrong = "pass" if right == "fail" else "fail"
        cells = [f"{ratio:.2f} ({right})"]
        for _, key in RULES:
            verdicts = [getattr(o, key) for o in outcomes]
            share = f"{100 * verdicts.count(wrong) / len(verdicts):.0f} %"
            shown = rates(verdicts) if key == "perfgate" else " / ".join(rates(verdicts).split(" / ")[:2])
            cells += [shown, f"**{share}**" if key == "perfgate" else share, seconds([getattr(o, key + "_s") for o in outcomes])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


REGIME_WORDS = {
    "quiet": "quiet: jitter only",
    "bursty": f"a bursty neighbour: on and off periods of {BURST_PERIOD_S[0]:g}-{BURST_PERIOD_S[1]:g} s, "
              f"{BURST_SLOWDOWN:g}x slower while on",
    "outliers": f"occasional outliers: {OUTLIER_RATE:.1%} of calls {OUTLIER_FACTOR:g}x slower",
}  # fmt: skip


def write_document(results: dict, args: argparse.Namespace, elapsed: float, real: list[str]) -> None:
    trials = len(next(iter(results.values())))
    block_ms = 1e3 * dict(args.plan_overrides).get("target_block_s", MeasurementPlan((1,)).target_block_s)
    cpu_minutes = sum(resource.getrusage(who).ru_utime for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 60
    lines = [
        "# Decision quality: perfgate beside the naive rules",
        "",
        "Made by `" + " ".join(["python", "benchmarks/decision_quality.py", *map(shlex.quote, sys.argv[1:])]) + "`"
        f" ({elapsed / 60:.1f} minutes on {args.workers} processes, {cpu_minutes:.1f} CPU-minutes). Budget +15 % (`latency.p50` and `latency.p95`, "
        "perfgate's defaults); at a true ratio up to 1.10 the right verdict is pass, from 1.20 on it is fail. "
        f"{trials} trials per cell; \"wrong\" is the share of trials with the wrong verdict (an inconclusive "
        "is not wrong, but it is not a verdict either).",
        "",
        "## How it is simulated",
        "",
        f"A model whose quiet call takes {args.call_us:g} µs, against itself made *ratio* times slower, on a "
        f"simulated runner whose state is a function of time that both models share: {JITTER_SIGMA:g} lognormal "
        f"jitter per call, and {REGIME_WORDS['bursty']}, or {REGIME_WORDS['outliers']}. perfgate is the shipped "
        f"engine (`pipeline.run_comparison`: warm-up, interleaved ABBA block pairs of ~{block_ms:g} ms, looks, confidence "
        "intervals) on in-process fake backends in virtual time (`benchmarks/simulated_machine.py`); the time "
        f"budget is {args.time_budget:g} s. Time to verdict is all in: {WORKER_START_S:g} s to start a worker and "
        "load (both models at once on two cores), then warm-up and measuring.",
        "",
        "The naive rules see the same kind of machine: **pytest-benchmark** "
        "`--benchmark-compare-fail=mean:15%` against a stored run (the reference's run earlier, the candidate's "
        "run later, each as many calls as fill pytest-benchmark's default 1 s; its time is the candidate's run), "
        f"and **github-action-benchmark** with `alert-threshold: 115%` (one number per model per CI run: a "
        f"{ACTION_BENCHMARK_CALLS}-call timing loop's mean, one model after the other; its time is that run).",
        "",
    ]
    for regime in REGIMES:
        if any(key[0] == regime for key in results):
            lines += [f"## {REGIME_WORDS[regime].capitalize()}", "", *simulated_table(results, regime), ""]
    lines += real
    OUTPUT.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100, help="trials per true ratio and regime")
    parser.add_argument("--workers", type=int, default=2, help="processes for the simulated trials")
    parser.add_argument("--call-us", type=float, default=100.0, help="the simulated model's quiet call, in µs")
    parser.add_argument("--time-budget", type=float, default=60.0)
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--ratios", default=",".join(f"{r:g}" for r in RATIOS))
    parser.add_argument("--plan", action="append", default=[], metavar="KEY=VALUE",
                        help="a MeasurementPlan override (e.g. first_look_pairs=3), to try a design; "
                             "alpha_k_squared=1 tries alpha * 6 / (pi^2 k^2) at look k")  # fmt: skip
    parser.add_argument("--real-reps", type=int, default=0, help="runs of each real-model pair (0: none)")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args()
    overrides = {key: float(value) if "." in value else int(value) for key, value in (o.split("=", 1) for o in args.plan)}
    args.plan_overrides = overrides

    began = time.monotonic()
    results = simulate(args.trials, args.workers, args.call_us * 1e3, args.time_budget, overrides,
                       regimes=tuple(args.regimes.split(",")),
                       ratios=tuple(float(r) for r in args.ratios.split(",")))  # fmt: skip
    real = []
    if args.real_reps:
        from decision_quality_real import real_section

        real = real_section(args.real_reps, args.time_budget)
    elapsed = time.monotonic() - began
    for regime in REGIMES:
        if any(key[0] == regime for key in results):
            print(f"\n{regime}\n" + "\n".join(simulated_table(results, regime)))
    print("\n".join(real))
    print(f"\n{elapsed:.0f} s in all", file=sys.stderr)
    if not args.no_write:
        write_document(results, args, elapsed, real)
        print(f"wrote {os.path.relpath(OUTPUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
