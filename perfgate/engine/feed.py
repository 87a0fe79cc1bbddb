"""Feeding: map columns to each model's inputs, read the chosen rows once (each side's own
with data drift, ``perfgate.data.data_sources``), build each
model's batches and hand them to its worker; and where a batch's time goes (stages)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from perfgate.data.batches import build_batches
from perfgate.data.data_sources import Sides, bind_sides
from perfgate.measurements import Series, Stages
from perfgate.results import SIDES, PreparedInput
from perfgate.sizes import size_lookup
from perfgate.specs import DataSpec, ModelSpec
from perfgate.worker.process import Worker
from perfgate.worker.protocol import SETUP_TIMEOUT_S, ModelInfo, SetFeeds


@dataclass(frozen=True)
class Fed:
    inputs: Mapping[str, tuple[PreparedInput, ...]]  # per model
    batches: Mapping[int, int]  # batch size -> how many batches each worker holds
    warnings: tuple[str, ...]
    first_feeds: Mapping[str, dict]  # per model: the first batch of the first batch size (for cold starts)
    read_seconds: float  # reading the chosen rows from Parquet, once for both models (once per file with data drift)
    tensor_seconds: Mapping[tuple[str, int], float]  # (model, batch size) -> building its batches
    backend_seconds: Mapping[tuple[str, int], float]  # (model, batch size) -> the backend's prepare
    sizes: Mapping[int, np.ndarray] = field(default_factory=dict)  # batch size -> each batch's total size


def feed(
    workers: Mapping[str, Worker],
    infos: Mapping[str, ModelInfo],
    sides: Sides,
    data: DataSpec,
    models: Sequence[ModelSpec],
    batch_sizes: tuple[int, ...],
    paths: Mapping[str, str],
    clock: Callable[[], float],
    *,
    more_instances: Sequence[Mapping[str, Worker]] = (),
) -> Fed:
    """Map columns to each model's inputs (``data.inputs`` and each of ``models``' own),
    read the rows once (once per file with data drift), send each worker its batches of
    each of ``batch_sizes`` (the same batches to every instance of a model: ``workers``
    and ``more_instances``)."""
    labels = {side: sides.label(side, paths[side]) for side in SIDES}
    size_column = [data.size_column] if data.size_column else []
    own_inputs = {model.role: model.inputs for model in models}
    tensors = {side: infos[side].inputs for side in SIDES}
    bindings = bind_sides(sides, tensors, data.inputs, own_inputs, labels, set_aside=size_column)
    began = clock()
    tables = sides.read({side: [name for binding in bindings[side] for name in binding.columns] for side in SIDES}, size_column)
    read_seconds = clock() - began
    inputs: dict[str, tuple[PreparedInput, ...]] = {}
    batches: dict[int, int] = {}
    tensor_seconds: dict[tuple[str, int], float] = {}
    backend_seconds: dict[tuple[str, int], float] = {}
    first_feeds: dict[str, dict] = {}
    warnings = list(sides.warnings)
    for batch_size in batch_sizes:
        for position, side in enumerate(SIDES):
            build = functools.partial(
                build_batches, tables[side], bindings[side], infos[side].inputs, batch_size, pad_value=data.pad_value,
                model=labels[side], allow_nonfinite=data.allow_nonfinite, file_rows=sides.selections[side].indices,
            )  # fmt: skip
            if position == 0:
                # Untimed: the first build of a batch size pays for fresh memory pages, which the
                # builds after it reuse, so timing it would charge the reference for going first.
                build()
            began = clock()
            prepared = build()
            tensor_seconds[(side, batch_size)] = clock() - began
            backend_seconds[(side, batch_size)] = workers[side].call(
                SetFeeds(batch_size, list(prepared.feeds)), timeout=SETUP_TIMEOUT_S
            )
            for instance in more_instances:
                instance[side].call(SetFeeds(batch_size, list(prepared.feeds)), timeout=SETUP_TIMEOUT_S)
            inputs.setdefault(side, prepared.inputs)
            first_feeds.setdefault(side, prepared.feeds[0])
        batches[batch_size] = len(prepared.feeds)
        if prepared.dropped_rows:
            warnings.append(f"batch {batch_size}: the last {prepared.dropped_rows} rows do not fill a batch and are not used")
    sizes = size_lookup(tables["reference"], data.size_column, batch_sizes)  # no size column with data drift
    return Fed(inputs, batches, tuple(warnings), first_feeds, read_seconds, tensor_seconds, backend_seconds, sizes)


def stages(fed: Fed, series: tuple[Series, ...], rows: int) -> tuple[Stages, ...]:
    """Per batch size and model: seconds per batch to read, build tensors, prepare, run (p50)."""
    found = []
    for one in series:
        count = fed.batches[one.batch_size]
        batch = one.batch_size
        found.append(
            Stages(
                batch_size=batch,
                read=fed.read_seconds * batch / max(rows, 1),
                tensors={side: fed.tensor_seconds[(side, batch)] / count for side in SIDES},
                backend={side: fed.backend_seconds[(side, batch)] / count for side in SIDES},
                model={side: float(np.median(one.samples(side))) / 1e9 for side in SIDES},
            )
        )
    return tuple(found)
