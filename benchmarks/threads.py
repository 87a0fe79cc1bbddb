"""Which --threads default gives the steadiest decisions on this machine?

For each thread count, two workers load the same fixture model (an A/A pair), pinned as
perfgate pins them; all four workers take turns in random block order, so every setting
sees the same machine. For each setting it prints the median latency, the call-to-call
spread (p95 / p50), the drift between blocks beyond that spread, and the width of the
A/A ratio's 95 % interval after the same number of block pairs: the narrower, the sooner
a comparison decides.

    python benchmarks/threads.py [--pairs 200] [--batch-size 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from overhead import feeds_for  # noqa: E402
from perfgate.backends.base import BackendOptions  # noqa: E402
from perfgate.stats import drift_between_blocks, ratio_interval  # noqa: E402
from perfgate.worker import LoadModel, LoadRequest, RunBlock, SetFeeds, SubprocessWorker, WarmUpModel, worker_cpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--calls", type=int, default=200, help="calls per block")
    args = parser.parse_args()
    feeds = feeds_for(args.batch_size)
    model = str(ROOT / "fixtures" / "mlp_reference.onnx")
    settings = [threads for threads in (1, 2) if worker_cpus(threads) is not None]
    with tempfile.TemporaryDirectory() as log_dir:
        workers = {}
        for threads in settings:
            for side in ("a", "b"):
                worker = SubprocessWorker(f"{threads}{side}", log_dir)
                worker.start(threads, worker_cpus(threads))
                worker.call(LoadModel(LoadRequest("onnxruntime", model, BackendOptions(threads=threads))), timeout=120)
                worker.call(SetFeeds(args.batch_size, feeds), timeout=120)
                worker.call(WarmUpModel(args.batch_size, 100, 0.5, 10.0), timeout=120)
                workers[(threads, side)] = worker
        blocks = {key: [] for key in workers}
        rng = np.random.default_rng(0)
        keys = list(workers)
        for pair in range(args.pairs):
            for index in rng.permutation(len(keys)):
                key = keys[index]
                samples = workers[key].call(RunBlock(args.batch_size, pair * args.calls, args.calls), timeout=120)
                blocks[key].append(np.asarray(samples, dtype=np.float64))
        for worker in workers.values():
            worker.close()

    print(f"fixture mlp_reference.onnx, batch {args.batch_size}, {args.pairs} block pairs x {args.calls} calls per worker")
    print(f"{'threads':>7}  {'p50':>9}  {'p95/p50':>7}  {'drift':>6}  {'A/A ratio':>9}  {'95% CI width':>12}")
    for threads in settings:
        a, b = blocks[(threads, "a")], blocks[(threads, "b")]
        both = np.concatenate(a + b)
        p50, p95 = np.quantile(both, [0.5, 0.95])
        interval = ratio_interval(a, b, 0.5, 0.95)
        drift = drift_between_blocks(a)
        print(
            f"{threads:>7}  {p50 / 1e3:>6.2f} us  {p95 / p50:>7.3f}  {drift or 0:>6.1%}  {interval.estimate:>9.3f}"
            f"  {(interval.high / interval.low - 1):>12.2%}"
        )


if __name__ == "__main__":
    main()
