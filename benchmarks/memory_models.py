"""Torch factories for benchmarks/memory_accuracy.py: the same small network, with and
without a known extra 100 MiB held in a buffer (filled with ones, so every page is resident)."""

from __future__ import annotations

import torch

EXTRA_BYTES = 100 * 2**20


class Holder(torch.nn.Module):
    def __init__(self, extra_bytes: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 8)
        if extra_bytes:
            self.register_buffer("ballast", torch.ones(extra_bytes // 4, dtype=torch.float32))

    def forward(self, features):
        return self.linear(features)


def plain() -> Holder:
    return Holder(0)


def with_100_mib() -> Holder:
    return Holder(EXTRA_BYTES)
