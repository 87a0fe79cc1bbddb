"""perfgate's measurement overhead: its p50 against a raw perf_counter_ns loop.

All three loops time the *same* ONNX Runtime session in one process, on the same feeds,
in blocks run in random order:

* raw        `t0 = perf_counter_ns(); session.run(None, feed); t1 = perf_counter_ns()`,
             as a user writes it (outputs are freed, and output names looked up, inside
             the timed region);
* raw-same   the call perfgate makes: output names resolved once, outputs freed after t1;
* perfgate   the timing loop its workers run (WorkerCore.run_block).

perfgate / raw is the overhead a user sees (target <= 1.05); perfgate / raw-same is
what perfgate's own machinery (indirection, wrap-around, synchronize) costs.

    python benchmarks/overhead.py [--model fixtures/mlp_reference.onnx] [--blocks 200] [--calls 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfgate.backends.base import BackendOptions  # noqa: E402
from perfgate.worker import LoadRequest, WorkerCore  # noqa: E402


def feeds_for(batch_size: int) -> list[dict[str, np.ndarray]]:
    table = pq.read_table(ROOT / "fixtures" / "features.parquet", columns=[f"f{i:02d}" for i in range(16)])
    features = np.column_stack([column.to_numpy() for column in table.columns]).astype(np.float32)
    return [{"features": features[i : i + batch_size]} for i in range(0, len(features) - batch_size + 1, batch_size)]


def raw_block(session, feeds, start: int, count: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for position in range(count):
        feed = feeds[(start + position) % len(feeds)]
        began = clock()
        session.run(None, feed)
        samples.append(clock() - began)
    return samples


def raw_same_block(session, feeds, start: int, count: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    names = [output.name for output in session.get_outputs()]
    for position in range(count):
        feed = feeds[(start + position) % len(feeds)]
        began = clock()
        outputs = session.run(names, feed)
        ended = clock()
        outputs = None  # noqa: F841
        samples.append(ended - began)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "fixtures" / "mlp_reference.onnx"))
    parser.add_argument("--blocks", type=int, default=200, help="blocks per method and batch size")
    parser.add_argument("--calls", type=int, default=500, help="calls per block")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # as perfgate pins its workers

    core = WorkerCore()
    core.load(LoadRequest("onnxruntime", args.model, BackendOptions(threads=1)))
    session = core.backend._session  # the very session perfgate's loop runs
    rng = np.random.default_rng(0)
    print(f"model {args.model}; onnxruntime, 1 thread; {args.blocks} blocks x {args.calls} calls per method")
    print(f"{'batch':>5}  {'method':<9} {'p50':>9} {'p95':>9}   perfgate/method: p50    p95")
    for batch_size in (1, 32):
        feeds = feeds_for(batch_size)
        core.set_feeds(batch_size, feeds)
        core.warm_up(batch_size, 100, 0.5, 10.0)
        raw_block(session, feeds, 0, 1000)
        methods = {
            "raw": lambda start: raw_block(session, feeds, start, args.calls),
            "raw-same": lambda start: raw_same_block(session, feeds, start, args.calls),
            "perfgate": lambda start: core.run_block(batch_size, start, args.calls),
        }
        samples: dict[str, list[int]] = {name: [] for name in methods}
        names = list(methods)
        for block in range(args.blocks):
            for name in rng.permutation(names):
                samples[name].extend(methods[name](block * args.calls))
        ours = np.quantile(samples["perfgate"], [0.5, 0.95])
        for name in names:
            q = np.quantile(samples[name], [0.5, 0.95])
            ratio = "" if name == "perfgate" else f"{ours[0] / q[0]:>22.3f} {ours[1] / q[1]:>6.3f}"
            print(f"{batch_size:>5}  {name:<9} {q[0] / 1e3:>6.2f} us {q[1] / 1e3:>6.2f} us {ratio}")


if __name__ == "__main__":
    main()
