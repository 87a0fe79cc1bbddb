"""A model that sleeps on the GPU for a known time, for checking GPU timing.

`sleeper` is a torch factory (`--reference-backend torch`, model `gpu_sleep:sleeper`):
forward() queues torch.cuda._sleep(PERFGATE_GPU_SLEEP_CYCLES) and returns at once, so
a timer that does not wait for the GPU sees only the launch. `UnsynchronizedTorch` is
the torch backend with its synchronization removed, to show what that timer measures.
"""

from __future__ import annotations

import os

import torch

from perfgate.backends.torch import TorchBackend


class GpuSleep(torch.nn.Module):
    def __init__(self, cycles: int) -> None:
        super().__init__()
        self.cycles = cycles

    def forward(self, features):
        torch.cuda._sleep(self.cycles)
        return features


def sleeper() -> GpuSleep:
    return GpuSleep(int(os.environ["PERFGATE_GPU_SLEEP_CYCLES"]))


class UnsynchronizedTorch(TorchBackend):
    name = "torch-unsynchronized"

    def synchronize(self) -> None:
        pass


def cycles_for(milliseconds: float, repeats: int = 20) -> tuple[int, float]:
    """GPU sleep cycles that take about ``milliseconds``, and their time by CUDA events (median ms)."""
    probe = 10_000_000
    cycles = int(probe * milliseconds / _event_ms(probe, 5))
    return cycles, _event_ms(cycles, repeats)


def _event_ms(cycles: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]
