"""A generative model's prompts from the Parquet file: one column, of strings (each model's
own tokenizer makes them token ids, in its worker) or of lists of token ids (used as they
are, by both models alike)."""

from __future__ import annotations

from typing import Mapping

import pyarrow as pa

from perfgate.data.data_sources import Sides
from perfgate.errors import ColumnMappingError, DataError, option
from perfgate.data.inputs import shown
from perfgate.results import SIDES

Prompt = str | tuple[int, ...]


def read_prompts(sides: Sides, column: str) -> dict[str, tuple[Prompt, ...]]:
    """Each side's prompts (the same tuple for both without data drift)."""
    _require_column(sides, column)
    tables = sides.read({side: [column] for side in SIDES})
    if not sides.drift:
        shared = _prompts(tables["reference"].column(column), column, sides.datasets["reference"].path)
        return {side: shared for side in SIDES}
    return {side: _prompts(tables[side].column(column), column, sides.datasets[side].path) for side in SIDES}


def _require_column(sides: Sides, column: str) -> None:
    for side in SIDES:
        dataset = sides.datasets[side]
        if column not in dataset.column_names:
            columns = ", ".join(dataset.column_names[:12]) + (", ..." if len(dataset.column_names) > 12 else "")
            raise ColumnMappingError(
                f"{option('prompt_column', column)}: data {shown(dataset.path)} has no column {column!r} (its columns: {columns})"
            )


def _prompts(values: pa.ChunkedArray, column: str, path: str) -> tuple[Prompt, ...]:
    kind = values.type
    where = f"{option('prompt_column', column)} in {shown(path)}"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = values.to_pylist()
        for row, text in enumerate(texts):
            if text is None or not text.strip():
                raise DataError(f"{where}: row {row} holds {'no prompt' if text is None else 'an empty prompt'}")
        return tuple(texts)
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_integer(kind.value_type):
        rows = values.to_pylist()
        for row, ids in enumerate(rows):
            if not ids:
                raise DataError(f"{where}: row {row} holds {'no prompt' if ids is None else 'an empty list of token ids'}")
            if any(token is None or token < 0 for token in ids):
                raise DataError(f"{where}: row {row} holds a missing or negative token id")
        return tuple(tuple(int(token) for token in ids) for ids in rows)
    raise ColumnMappingError(f"{where}: the column holds {kind}, not prompts (strings, or lists of integer token ids)")


def describe_prompts(prompts: Mapping[str, tuple[Prompt, ...]]) -> str:
    """For the progress line and the report: '12 prompts (text)'."""
    reference = prompts["reference"]
    kind = "text" if reference and isinstance(reference[0], str) else "token ids"
    return f"{len(reference)} prompts ({kind})"
