"""Does perfgate's GPU timing wait for the GPU? (needs an NVIDIA GPU and CUDA PyTorch)

A model sleeps on the GPU for a time measured with CUDA events (about 2 ms). perfgate's
torch worker must measure it within 5 %; the same worker with its synchronization
removed must measure far less (only the kernel launch), which is the classic wrong
result of timing GPU work with a host clock.

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
from perfgate.worker import LoadRequest, SubprocessWorker, worker_cpus  # noqa: E402


def measured_ms(backend: str, device: str, blocks: int = 20, calls: int = 20) -> float:
    """perfgate's p50 for the sleeping model, timed in a worker process as in a comparison."""
    feeds = [{"features": np.zeros((1, 16), np.float32)} for _ in range(8)]
    with tempfile.TemporaryDirectory() as log_dir:
        worker = SubprocessWorker(backend, log_dir)
        worker.start(1, worker_cpus(1))
        try:
            request = LoadRequest(backend, "gpu_sleep:sleeper", BackendOptions(device=device), tuple(sys.path))
            worker.call("load", request, timeout=300)
            worker.call("set_feeds", 1, feeds, timeout=300)
            worker.call("warm_up", 1, 10, 0.2, 30.0, timeout=300)
            samples = []
            for block in range(blocks):
                samples += worker.call("run_block", 1, block * calls, calls, timeout=300)
        finally:
            worker.close()
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
    unsynchronized = measured_ms("gpu_sleep:UnsynchronizedTorch", args.device)
    ok = abs(synchronized / expected - 1) <= 0.05 and unsynchronized < 0.5 * expected
    print(f"perfgate (synchronized):      {synchronized:.3f} ms  ({synchronized / expected - 1:+.1%} of the sleep)")
    print(f"without synchronization:      {unsynchronized:.3f} ms  ({unsynchronized / expected - 1:+.1%}: measures the launch)")
    print("OK" if ok else "WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
