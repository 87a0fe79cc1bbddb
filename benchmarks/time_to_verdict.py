"""Time to verdict, all in: `perfgate compare` from the shell to its exit, as a user runs it.

Pairs (each run `--reps` times, one after the other, nothing else started by this script):

* fast 2x:   the shipped ~15 us MLP (fixtures/mlp_reference.onnx) against itself made
             exactly 2x slower (benchmarks/slowdown.py: the real model, then a busy-wait);
* heavy 2x:  a ~25 ms model (nine 512x512 matrix products that depend on the input, built
             here into a temporary folder) against one with eighteen: about 2x slower;
* fast A/A:  the MLP against its A/A twin (fixtures/mlp_aa.onnx: same architecture);
* heavy A/A: the ~25 ms model against a byte-identical copy.

It prints each run's verdict, exit code and wall seconds (process start, imports, loading,
warm-up, measuring, report), then the median and the maximum per pair, and the targets
from issue 12 beside them. Run it alone on the machine: other load lengthens every run.

    python benchmarks/time_to_verdict.py [--reps 5] [--pairs fast2x,heavy2x,fastaa,heavyaa]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
DATA = FIXTURES / "features.parquet"
TARGETS = {"fast2x": ("fail", 3.0), "heavy2x": ("fail", 8.0), "fastaa": ("pass", 10.0), "heavyaa": ("pass", 10.0)}


def heavy_model(path: Path, products: int) -> None:
    """x [batch, 16] -> a 512x512 matrix shifted by x's sum -> `products` matrix products -> mean."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    size = 512
    weights = [numpy_helper.from_array((rng.standard_normal((size, size)) / size).astype(np.float32), f"w{i}") for i in range(products)]
    base = numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "base")
    nodes = [
        helper.make_node("ReduceSum", ["features"], ["total"], keepdims=0),
        helper.make_node("Add", ["base", "total"], ["m0"]),
    ]
    for i in range(products):
        nodes.append(helper.make_node("MatMul", [f"m{i}", f"w{i}"], [f"m{i + 1}"]))
    nodes.append(helper.make_node("ReduceMean", [f"m{products}"], ["pooled"], axes=[1], keepdims=0))
    nodes.append(helper.make_node("Slice", ["pooled", "zero", "batch"], ["scores"]))
    graph = helper.make_graph(
        nodes, "heavy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None])],
        initializer=[base, *weights, numpy_helper.from_array(np.array([0], np.int64), "zero"),
                     numpy_helper.from_array(np.array([1], np.int64), "batch")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def gate(reference: Path, candidate: Path, *extra: str, env: dict | None = None) -> tuple[str, int, float]:
    with tempfile.TemporaryDirectory() as out:
        report = Path(out) / "report.json"
        command = [sys.executable, "-m", "perfgate", "compare", "-r", str(reference), "-c", str(candidate), "-d", str(DATA),
                   "--input", "features=f*", "--json", str(report), "--quiet", *extra]  # fmt: skip
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        seconds = time.perf_counter() - began
        verdict = json.loads(report.read_text())["verdict"] if report.exists() else "none"
        if done.returncode not in (0, 1, 4):
            print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no stderr", file=sys.stderr)
        return verdict, done.returncode, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--pairs", default="fast2x,heavy2x,fastaa,heavyaa")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perfgate-ttv-"))
    heavy, heavier, heavy_copy = work / "heavy.onnx", work / "heavier.onnx", work / "heavy_copy.onnx"
    heavy_model(heavy, 9)
    heavy_model(heavier, 18)
    shutil.copyfile(heavy, heavy_copy)
    slowed = dict(os.environ, PERFGATE_BENCH_SLOWDOWN="2", PYTHONPATH=os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)]))
    pairs = {
        "fast2x": (FIXTURES / "mlp_reference.onnx", FIXTURES / "mlp_reference.onnx",
                   ("--candidate-backend", "slowdown:SlowedOnnxRuntime"), slowed),
        "heavy2x": (heavy, heavier, (), None),
        "fastaa": (FIXTURES / "mlp_reference.onnx", FIXTURES / "mlp_aa.onnx", (), None),
        "heavyaa": (heavy, heavy_copy, (), None),
    }  # fmt: skip
    print(f"perfgate time to verdict, all in (python -m perfgate compare ... to its exit); {args.reps} runs a pair; "
          f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip
    summary = []
    for name in args.pairs.split(","):
        reference, candidate, extra, env = pairs[name]
        runs = [gate(reference, candidate, *extra, env=env) for _ in range(args.reps)]
        for index, (verdict, code, seconds) in enumerate(runs, 1):
            print(f"  {name:8} run {index}: {verdict:12} exit {code}  {seconds:6.2f} s")
        seconds = [s for _, _, s in runs]
        verdicts = [v for v, _, _ in runs]
        wanted, target = TARGETS[name]
        summary.append((name, verdicts.count(wanted), len(runs), statistics.median(seconds), max(seconds), wanted, target))
    print()
    print(f"{'pair':9} {'right':>7} {'median s':>9} {'max s':>7}  target")
    for name, right, count, median, worst, wanted, target in summary:
        print(f"{name:9} {right:>3}/{count:<3} {median:9.2f} {worst:7.2f}  {wanted}, <= {target:g} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
