"""Does perfgate's GPU timing wait for the GPU? (needs an NVIDIA GPU and CUDA PyTorch)

A model sleeps on the GPU for a time measured with CUDA events (about 2 ms). perfgate's
torch worker must measure it within 5 %. The control is the same backend with its
synchronization removed, timed the way a hand-written loop does: started on an idle GPU,
a few calls measure only the kernel launch, the classic wrong result of timing GPU work
with a host clock. Its long-run figure is printed too: once the launch queue is full
(about a thousand launches), every launch waits for a kernel to finish, so an
unsynchronized timer then reports the GPU's pace, right by accident only for a model that
is all GPU work in one stream.

    python benchmarks/gpu_sync_check.py [--milliseconds 2] [--device cuda:0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from perfgate.backends.base import BackendOptions  # noqa: E402
from perfgate.worker import LoadModel, LoadRequest, RunBlock, SetFeeds, SubprocessWorker, WarmUpModel, time_calls, worker_cpus  # noqa: E402


def measured_ms(backend: str, device: str, blocks: int = 20, calls: int = 20) -> float:
    """perfgate's p50 for the sleeping model, timed in a worker process as in a comparison."""
    feeds = [{"features": np.zeros((1, 16), np.float32)} for _ in range(8)]
    with tempfile.TemporaryDirectory() as log_dir:
        worker = SubprocessWorker(backend, log_dir)
        worker.start(1, worker_cpus(1))
        try:
            request = LoadRequest(backend, "gpu_sleep:sleeper", BackendOptions(device=device), tuple(sys.path))
            worker.call(LoadModel(request), timeout=300)
            worker.call(SetFeeds(1, feeds), timeout=300)
            worker.call(WarmUpModel(1, 10, 0.2, 30.0), timeout=300)
            samples = []
            for block in range(blocks):
                samples += worker.call(RunBlock(1, block * calls, calls), timeout=300)
        finally:
            worker.close()
    return float(np.median(samples)) / 1e6


def short_loop_ms(device: str, rounds: int = 20, calls: int = 10) -> float:
    """The p50 of ``calls`` unsynchronized calls started on an idle GPU, ``rounds`` times."""
    import time

    import torch

    from gpu_sleep import UnsynchronizedTorch

    backend = UnsynchronizedTorch(BackendOptions(device=device))
    backend.setup()
    backend.load("gpu_sleep:sleeper")
    prepared = backend.prepare({"features": np.zeros((1, 16), np.float32)})
    samples = []
    try:
        for _ in range(rounds):
            torch.cuda.synchronize()
            samples += time_calls(backend.run, backend.synchronize, [prepared], 0, calls, time.perf_counter_ns)
        torch.cuda.synchronize()
    finally:
        backend.close()
    return float(np.median(samples)) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--milliseconds", type=float, default=2.0)
    parser.add_argument("--device", default="cuda:0")
    args = parser.parse_args()
    import torch

    from gpu_sleep import cycles_for

    torch.cuda.set_device(torch.device(args.device))
    cycles, expected = cycles_for(args.milliseconds)
    os.environ["PERFGATE_GPU_SLEEP_CYCLES"] = str(cycles)
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    print(f"sleep of {cycles} cycles: {expected:.3f} ms by CUDA events")
    synchronized = measured_ms("torch", args.device)
    short = short_loop_ms(args.device)
    long_run = measured_ms("gpu_sleep:UnsynchronizedTorch", args.device)
    ok = abs(synchronized / expected - 1) <= 0.05 and short < 0.5 * expected
    print(f"perfgate (synchronized):                 {synchronized:.3f} ms  ({synchronized / expected - 1:+.1%} of the sleep)")
    print(f"unsynchronized, 10 calls on an idle GPU: {short:.3f} ms  ({short / expected - 1:+.1%}: the launch)")
    print(f"unsynchronized, a long run:              {long_run:.3f} ms  ({long_run / expected - 1:+.1%}: launch queue full, the GPU's pace)")
    print("OK" if ok else "WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
