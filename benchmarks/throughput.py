"""Throughput of the fixtures at batch 1 and 32, as perfgate measures it side by side.

Throughput is samples per second over the wall time of a window of calls run back to back
(synchronized once at the end), LoadGen's "Offline" measure, not batch size / mean latency.

    python benchmarks/throughput.py [--formats onnx,torch,tensorflow]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfgate.config import CompareConfig  # noqa: E402
from perfgate.engine.pipeline import run_comparison  # noqa: E402
from perfgate.formatting import format_change, format_rate  # noqa: E402

FIXTURES = ROOT / "fixtures"
FORMATS = {
    "onnx": (FIXTURES, ".onnx", "onnxruntime"),
    "torch": (FIXTURES / "torch", ".pt", "torch"),
    "tensorflow": (FIXTURES / "tensorflow", ".savedmodel", "tensorflow"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default="onnx")
    args = parser.parse_args()
    print(f"{'format':<11} {'pair':<24} {'batch':>5}  {'reference':>10}  {'candidate':>10}  {'ratio (CI)':<26}")
    for name in args.formats.split(","):
        folder, suffix, module = FORMATS[name]
        if importlib.util.find_spec(module) is None:
            print(f"{name:<11} (not installed)")
            continue
        for candidate in ("mlp_aa", "mlp_slow"):
            config = CompareConfig.from_options(
                str(folder / f"mlp_reference{suffix}"), str(folder / f"{candidate}{suffix}"), str(FIXTURES / "features.parquet"),
                inputs=["features=f*"], batch_sizes=(1, 32), cold_starts=0, max_latency_increase="10000%",
                budgets=["throughput:-99%"], time_budget_s=20.0,
            )  # fmt: skip
            report = run_comparison(config)
            for check in report.checks:
                if check.metric.startswith("throughput"):
                    print(
                        f"{name:<11} {'reference vs ' + candidate:<24} {check.batch_size:>5}  {format_rate(check.reference):>10}  "
                        f"{format_rate(check.candidate):>10}  {format_change(check.ratio, 1)} "
                        f"({format_change(check.ci[0], 1)} .. {format_change(check.ci[1], 1)})"
                    )


if __name__ == "__main__":
    main()
