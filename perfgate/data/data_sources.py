"""Each model's rows: one Parquet file for both (a comparison of two models), or with
``--reference-data`` / ``--candidate-data`` a file each (data drift: "this month's traffic
has longer texts: what does it cost?", usually the same model on both sides).

With data drift each side reads the same number of rows from its own file: ``--rows``,
or the smaller file's row count where that is fewer, drawn with ``--seed`` from a file
that has more. Different inputs give different answers, so the outputs are not compared,
and the size analysis (``--size-column``), which lines both models' calls up on the same
batches, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pyarrow as pa

from perfgate.data.dataset import ParquetDataset, RowSelection
from perfgate.errors import ColumnMappingError
from perfgate.data.inputs import ANY_INPUT, InputBinding, bind_inputs, shown
from perfgate.results import SIDES, DataReport
from perfgate.specs import DataSpec, ModelSpec
from perfgate.tensors import TensorSpec

@dataclass(frozen=True)
class Sides:
    """Each model's dataset and rows (the same objects on both sides without data drift)."""

    datasets: Mapping[str, ParquetDataset]
    selections: Mapping[str, RowSelection]
    drift: bool
    warnings: tuple[str, ...]

    def label(self, side: str, model_path: str) -> str:
        """How messages name a side: ``candidate m.onnx``, and with data drift its file too."""
        label = f"{side} {shown(model_path)}"
        return f"{label} (data {shown(self.datasets[side].path)})" if self.drift else label

    def report(self, seed: int) -> DataReport:
        reference, candidate = (self.datasets[side] for side in SIDES)
        used = self.selections["reference"].count
        if not self.drift:
            return DataReport(reference.path, reference.num_rows, used, seed)
        return DataReport(reference.path, reference.num_rows, used, seed, "data", candidate.path, candidate.num_rows)

    def describe(self) -> str:
        """For the progress line: ``data d.parquet: 100 of 400 rows``."""
        used = self.selections["reference"].count
        if not self.drift:
            return f"data {self.datasets['reference'].path}: {used} of {self.datasets['reference'].num_rows} rows"
        files = "; ".join(f"{side} {self.datasets[side].path}: {used} of {self.datasets[side].num_rows} rows" for side in SIDES)
        return f"data drift, {files}"

    def read(self, columns: Mapping[str, Sequence[str]], extra: Sequence[str] = ()) -> dict[str, pa.Table]:
        """Each side's chosen rows of its ``columns`` (plus ``extra`` where a file has them),
        read once where both sides share the file."""
        tables = {}
        for side in SIDES if self.drift else SIDES[:1]:
            dataset = self.datasets[side]
            wanted = list(columns[side]) if self.drift else [name for each in SIDES for name in columns[each]]
            wanted += [name for name in extra if name in dataset.column_names]
            tables[side] = dataset.read(wanted, self.selections[side])
        return tables if self.drift else {side: tables["reference"] for side in SIDES}


def open_sides(data: DataSpec, models: Sequence[ModelSpec]) -> Sides:
    """Open each model's file (once where they share it) and choose its rows."""
    files = {model.role: data.file_for(model) for model in models}
    if files["reference"] == files["candidate"]:  # one file for both: no data drift
        dataset = ParquetDataset(files["reference"])
        selection = dataset.select_rows(data.rows, data.seed)
        warnings = []
        if data.rows is not None and data.rows > dataset.num_rows:
            warnings.append(f"--rows {data.rows} is more than the {dataset.num_rows} rows in the data; all rows are used")
        return Sides({side: dataset for side in SIDES}, {side: selection for side in SIDES}, False, tuple(warnings))
    datasets = {side: ParquetDataset(files[side]) for side in SIDES}
    counts = {side: datasets[side].num_rows for side in SIDES}
    fewest = min(counts.values())
    wanted = fewest if data.rows is None else min(data.rows, fewest)
    warnings = []
    if wanted < (data.rows or max(counts.values())):
        smaller = min(SIDES, key=counts.get)
        asked = f"--rows {data.rows} is more than" if data.rows is not None else "each model gets as many rows as"
        warnings.append(f"{asked} the {fewest} rows in the {smaller}'s data; {wanted} rows of each file are used")
    selections = {side: datasets[side].select_rows(wanted, data.seed) for side in SIDES}
    return Sides(datasets, selections, True, tuple(warnings))


def bind_sides(
    sides: Sides,
    models: Mapping[str, Sequence[TensorSpec]],
    inputs: Mapping[str, str],
    per_side: Mapping[str, Mapping[str, str]],
    labels: Mapping[str, str],
    set_aside: Sequence[str],
) -> dict[str, tuple[InputBinding, ...]]:
    """The columns for each model's inputs (``perfgate.data.inputs``): ``inputs`` for any model,
    ``per_side`` each model's own (``--reference-input``); against each side's own schema
    with data drift; files of one schema are bound together, as one file is."""
    schemas = {side: sides.datasets[side].schema for side in SIDES}
    if not sides.drift or schemas["reference"].equals(schemas["candidate"]):
        return bind_inputs(models, schemas["reference"], inputs, per_side, labels=labels, set_aside=set_aside)
    bound = {}
    for side in SIDES:
        other = next(name for name in SIDES if name != side)
        ours, theirs = {spec.name for spec in models[side]}, {spec.name for spec in models[other]}
        # --input NAME for the other model's input only is that model's business; one that
        # names neither model's input is left in, for bind_inputs to refuse
        shared = {name: cols for name, cols in inputs.items() if name == ANY_INPUT or name in ours or name not in theirs}
        try:
            bound.update(
                bind_inputs({side: models[side]}, schemas[side], shared, {side: per_side[side]}, labels=labels, set_aside=set_aside)
            )
        except ColumnMappingError as exc:
            if exc.message.startswith(labels[side]):
                raise
            # "--input x=f*: no column matches" says nothing of which file lacks it
            raise type(exc)(f"{labels[side]}: {exc.template}", details=exc.details) from exc
    return bound
