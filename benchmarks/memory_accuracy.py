"""Is perfgate's memory right? A model that holds a known extra 100 MiB against one that does not.

Both are the same small torch network, built by benchmarks/memory_models.py (the
candidate adds a 100 MiB buffer). perfgate's reported peak-RSS difference and load-RSS
difference should each be 100 MiB within +-5 %. With --device cuda the buffer lives on the
GPU, and the reported GPU peak (the allocator's) difference must be 100 MiB within +-5 %.

    python benchmarks/memory_accuracy.py [--repeats 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from memory_models import EXTRA_BYTES  # noqa: E402
from perfgate.compare import CompareConfig, run_comparison  # noqa: E402

MiB = 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        return gpu_main(args)
    config = CompareConfig.from_options(
        "memory_models:plain", "memory_models:with_100_mib", str(ROOT / "fixtures" / "features.parquet"),
        inputs=["features=f*"], reference_backend="torch", candidate_backend="torch", cold_starts=0, time_budget_s=5.0,
    )  # fmt: skip
    print(f"known extra: {EXTRA_BYTES / MiB:.1f} MiB (a torch buffer of ones)")
    print(f"{'run':>3}  {'peak RSS ref':>12}  {'cand':>10}  {'difference':>10}  {'error':>6}  {'load RSS diff':>13}  {'error':>6}")
    worst = 0.0
    for repeat in range(args.repeats):
        report = run_comparison(config)
        reference, candidate = report.reference.memory, report.candidate.memory
        peak = candidate["peak_rss"] - reference["peak_rss"]
        load = candidate["load_rss"] - reference["load_rss"]
        peak_error, load_error = peak / EXTRA_BYTES - 1, load / EXTRA_BYTES - 1
        worst = max(worst, abs(peak_error), abs(load_error))
        print(
            f"{repeat + 1:>3}  {reference['peak_rss'] / MiB:>8.1f} MiB  {candidate['peak_rss'] / MiB:>6.1f} MiB  "
            f"{peak / MiB:>6.1f} MiB  {peak_error:>+6.1%}  {load / MiB:>9.1f} MiB  {load_error:>+6.1%}"
        )
    print(f"worst error {worst:.1%} (target: within 5%); peak reset after loading: "
          f"{not report.reference.memory['peak_includes_load']}")  # fmt: skip
    return 0 if worst <= 0.05 else 1


def gpu_main(args: argparse.Namespace) -> int:
    config = CompareConfig.from_options(
        "memory_models:plain", "memory_models:with_100_mib", str(ROOT / "fixtures" / "features.parquet"),
        inputs=["features=f*"], reference_backend="torch", candidate_backend="torch", cold_starts=0, time_budget_s=5.0,
        device=args.device,
    )  # fmt: skip
    print(f"known extra: {EXTRA_BYTES / MiB:.1f} MiB (a torch buffer of ones, on {args.device})")
    print(f"{'run':>3}  {'GPU peak ref':>12}  {'cand':>10}  {'difference':>10}  {'error':>6}")
    worst = 0.0
    for repeat in range(args.repeats):
        report = run_comparison(config)
        reference = report.reference.memory["gpu_peak_allocated_bytes"]
        candidate = report.candidate.memory["gpu_peak_allocated_bytes"]
        error = (candidate - reference) / EXTRA_BYTES - 1
        worst = max(worst, abs(error))
        print(f"{repeat + 1:>3}  {reference / MiB:>8.1f} MiB  {candidate / MiB:>6.1f} MiB  "
              f"{(candidate - reference) / MiB:>6.1f} MiB  {error:>+6.1%}")  # fmt: skip
    print(f"worst error {worst:.1%} (target: within 5%)")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
