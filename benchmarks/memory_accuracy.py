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
from perfgate.config import CompareConfig  # noqa: E402
from perfgate.engine.pipeline import run_comparison  # noqa: E402

MiB = 2**20


def plain_against_100_mib(device: str) -> CompareConfig:
    return CompareConfig.from_options(
        "memory_models:plain", "memory_models:with_100_mib", str(ROOT / "fixtures" / "features.parquet"),
        inputs=["features=f*"], reference_backend="torch", candidate_backend="torch", cold_starts=0, time_budget_s=5.0,
        device=device,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    on_gpu = args.device.startswith("cuda")
    # on a GPU the buffer lives in device memory, so RSS says nothing about it
    readings = (("GPU peak", "gpu_peak_allocated_bytes"),) if on_gpu else (("peak RSS", "peak_rss"), ("load RSS", "load_rss"))
    config = plain_against_100_mib(args.device)
    print(f"known extra: {EXTRA_BYTES / MiB:.1f} MiB (a torch buffer of ones, on {args.device})")
    print("run" + "".join(f"  {label + ' ref':>13}  {'cand':>10}  {'difference':>10}  {'error':>6}" for label, _ in readings))
    worst = 0.0
    for repeat in range(args.repeats):
        report = run_comparison(config)
        row = f"{repeat + 1:>3}"
        for _, key in readings:
            reference, candidate = report.reference.memory[key], report.candidate.memory[key]
            error = (candidate - reference) / EXTRA_BYTES - 1
            worst = max(worst, abs(error))
            row += (f"  {reference / MiB:>9.1f} MiB  {candidate / MiB:>6.1f} MiB  "
                    f"{(candidate - reference) / MiB:>6.1f} MiB  {error:>+6.1%}")  # fmt: skip
        print(row)
    reset = "" if on_gpu else f"; peak reset after loading: {not report.reference.memory['peak_includes_load']}"
    print(f"worst error {worst:.1%} (target: within 5%){reset}")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
