"""False fails of an A/A pair at a tight budget, and the slow pair's verdicts beside them.

An A/A comparison: the shipped ~9 us MLP (fixtures/mlp_reference.onnx) against a byte copy
of itself, `--time-budget 2`, budgets `latency.p50:+0.5%` and `latency.p95:+0.5%` (tight:
each model runs in several worker processes). No candidate is slower, so every exit 1 is a
false fail; perfgate promises at most 5 % wrong verdicts (`--confidence 0.95`). Then a few
runs of the slow pair (fixtures/mlp_slow.onnx against the reference, several times slower)
under the default budget and under the tight one: each must fail.

It prints each run's exit code, latency.p50 ratio and interval, and at the end the false-fail
rate, the slow pair's verdicts and seconds, and the load (`uptime`) before and after: other
jobs on the machine make the process effects this measures larger, never smaller.

    python benchmarks/aa_false_fails.py [--aa 20] [--slow 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
TIGHT = ["--budget", "latency.p50:+0.5%", "--budget", "latency.p95:+0.5%", "--max-latency-increase", "100%"]


def compare(reference: Path, candidate: Path, data: Path, report: Path, budgets: list[str]) -> tuple[int, dict, float]:
    command = [
        sys.executable, "-m", "perfgate", "compare", "-r", str(reference), "-c", str(candidate), "-d", str(data),
        "--input", "features=f*", "--cold-starts", "0", "--time-budget", "2", "--output-rows", "16", "-q",
        "--json", str(report), *budgets,
    ]  # fmt: skip
    began = time.monotonic()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - began
    if done.returncode not in (0, 1, 4):
        raise SystemExit(f"perfgate exited {done.returncode}: {done.stderr.strip()}")
    return done.returncode, json.loads(report.read_text()), seconds


def p50(report: dict) -> str:
    check = next(check for check in report["checks"] if check["metric"] == "latency.p50")
    low, high = check["ci"]
    return f"p50 ratio {check['ratio']:.4f} [{low:.4f}, {high:.4f}] {check['verdict']}"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=20, help="A/A runs")
    parser.add_argument("--slow", type=int, default=3, help="slow-pair runs per budget")
    args = parser.parse_args()
    import perfgate

    print(f"perfgate from {Path(perfgate.__file__).parent}")
    print(f"before: {uptime()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="aa-false-fails-") as folder:
        work = Path(folder)
        reference, twin, data = work / "ref.onnx", work / "cand.onnx", work / "features.parquet"
        shutil.copyfile(FIXTURES / "mlp_reference.onnx", reference)
        shutil.copyfile(reference, twin)
        shutil.copyfile(FIXTURES / "features.parquet", data)
        fails = 0
        for run in range(args.aa):
            code, report, seconds = compare(reference, twin, data, work / "aa.json", TIGHT)
            fails += code == 1
            print(f"A/A {run + 1:2d}: exit {code}  {p50(report)}  {seconds:.1f} s", flush=True)
        slow = []
        for name, budgets in (("default", []), ("tight", TIGHT)):
            for run in range(args.slow):
                code, report, seconds = compare(reference, FIXTURES / "mlp_slow.onnx", data, work / "slow.json", budgets)
                slow.append((name, code, seconds))
                print(f"slow pair, {name} budget, {run + 1}: exit {code}  {p50(report)}  {seconds:.1f} s", flush=True)
    print(f"after:  {uptime()}")
    print(f"A/A false fails: {fails} of {args.aa} ({100.0 * fails / max(args.aa, 1):.0f} %)")
    for name in ("default", "tight"):
        codes = [code for kind, code, _ in slow if kind == name]
        seconds = [s for kind, _, s in slow if kind == name]
        print(f"slow pair, {name} budget: {codes.count(1)} of {len(codes)} failed; {max(seconds, default=0):.1f} s at most")


if __name__ == "__main__":
    main()
