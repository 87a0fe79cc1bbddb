"""Latency against input size (--size-column): each batch's size, and per-bucket percentiles.

A batch's size is the sum of the size column over its rows (a row's token count, for a
batch of one). Buckets split the measured calls into quintiles of size, so each holds
about a fifth of the calls; the fitted line (latency = intercept + slope * size) is the
same least-squares fit the latency_slope check compares.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pyarrow as pa

from perfgate.errors import ColumnMappingError
from perfgate.measurements import Series, SizeAnalysis, SizeBucket
from perfgate.results import SIDES
from perfgate.stats import fit_lines, regression_sums

BUCKETS = 5


def batch_totals(table: pa.Table, column: str, batch_size: int) -> np.ndarray:
    """Each full batch's total of ``column`` (rows in order, as the models see them)."""
    if column not in table.column_names:
        raise ColumnMappingError(f"--size-column {column}: no such column (columns: {', '.join(table.column_names)})")
    values = table.column(column)
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise ColumnMappingError(f"--size-column {column}: the column has type {kind}; it needs numbers (a size, a token count)")
    if values.null_count:
        raise ColumnMappingError(f"--size-column {column}: {values.null_count} rows are null")
    array = values.to_numpy().astype(np.float64)
    batches = len(array) // batch_size
    return array[: batches * batch_size].reshape(batches, batch_size).sum(axis=1)


def sized_blocks(series: Series, sizes: np.ndarray, side: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per block of ``side``: each call's batch size (from ``sizes``, per batch) and its latency."""
    return [(sizes[(start + np.arange(len(block))) % series.batches], block) for start, block in zip(series.starts, series.blocks(side))]


def analyze(series: Series, sizes: np.ndarray, column: str) -> SizeAnalysis:
    """Per-bucket p50/p95 and fitted lines for both models at one batch size."""
    calls = {}
    for side in SIDES:
        blocks = sized_blocks(series, sizes, side)
        calls[side] = (np.concatenate([x for x, _ in blocks]), np.concatenate([y for _, y in blocks]).astype(np.float64))
    edges = np.unique(np.quantile(calls["reference"][0], np.linspace(0.0, 1.0, BUCKETS + 1)))
    buckets = []
    for low, high in zip(edges[:-1], edges[1:]):
        last = high == edges[-1]
        counts, p50, p95 = {}, {}, {}
        for side, (x, y) in calls.items():
            chosen = y[(x >= low) & ((x <= high) if last else (x < high))]
            counts[side] = int(chosen.size)
            p50[side] = float(np.quantile(chosen, 0.5)) if chosen.size else None
            p95[side] = float(np.quantile(chosen, 0.95)) if chosen.size else None
        buckets.append(SizeBucket(float(low), float(high), counts, p50, p95))
    slope, intercept = {}, {}
    for side, (x, y) in calls.items():
        line = fit_lines(regression_sums([(x, y)]))[0]
        intercept[side], slope[side] = float(line[0]), float(line[1])
    return SizeAnalysis(series.batch_size, column, tuple(buckets), slope, intercept, tuple(float(v) for v in sizes))


def size_lookup(table: pa.Table, column: str | None, batch_sizes_measured: tuple[int, ...]) -> Mapping[int, np.ndarray]:
    if column is None:
        return {}
    return {batch_size: batch_totals(table, column, batch_size) for batch_size in batch_sizes_measured}
