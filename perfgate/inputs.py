"""Which Parquet columns feed which model input.

Each model input is fed by

1. ``--input NAME=COLS``: COLS is a comma list of column names or globs (``f*``,
   ``f0[0-9]``), taken in file order within each glob; or else
2. the column with the input's name.

The tensors made from those columns are ``perfgate.batches``'s.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import pyarrow as pa

from perfgate.errors import ColumnMappingError, UsageError
from perfgate.results import PreparedInput
from perfgate.tensors import TensorSpec


@dataclass(frozen=True)
class InputBinding:
    """The columns that feed one model input, and the rule that chose them."""

    input: str
    columns: tuple[str, ...]
    rule: str  # "by name" or "--input NAME=COLS"


def parse_input_options(options: Iterable[str]) -> dict[str, str]:
    """``['X=f*', 'mask=m']`` -> ``{'X': 'f*', 'mask': 'm'}``."""
    parsed: dict[str, str] = {}
    for option in options:
        name, sep, columns = option.partition("=")
        name, columns = name.strip(), columns.strip()
        if not sep or not name or not columns:
            raise UsageError(f"--input {option!r}: expected NAME=COLS, e.g. --input 'features=f*' or --input ids=input_ids")
        if name in parsed:
            raise UsageError(f"--input {name} is given twice")
        parsed[name] = columns
    return parsed


def check_input_names(explicit: Mapping[str, str], models: Mapping[str, Sequence[TensorSpec]]) -> None:
    """Every ``--input NAME`` must name an input of at least one model."""
    known = {spec.name for specs in models.values() for spec in specs}
    for name in explicit:
        if name not in known:
            listing = "; ".join(f"{label}: {', '.join(s.name for s in specs)}" for label, specs in models.items())
            raise ColumnMappingError(f"--input {name}: no model has an input called {name!r} ({listing})")


def resolve_bindings(
    specs: Sequence[TensorSpec], schema: pa.Schema, explicit: Mapping[str, str], model: str
) -> tuple[InputBinding, ...]:
    """The columns for each of a model's inputs."""
    if not specs:
        raise ColumnMappingError(f"{model}: the model declares no inputs, so no rows can feed it")
    bindings = []
    for spec in specs:
        if spec.name in explicit:
            pattern = explicit[spec.name]
            columns = expand_columns(pattern, schema.names, option=f"--input {spec.name}={pattern}")
            bindings.append(InputBinding(spec.name, columns, f"--input {spec.name}={pattern}"))
        elif spec.name in schema.names:
            bindings.append(InputBinding(spec.name, (spec.name,), "by name"))
        else:
            raise ColumnMappingError(
                f"{model}: no column feeds input {spec.name!r}; name a column {spec.name!r} or pass "
                f"--input {spec.name}=COLS (columns: {_column_listing(schema.names)})"
            )
    return tuple(bindings)


def expand_columns(pattern: str, names: Sequence[str], *, option: str) -> tuple[str, ...]:
    """Column names for a comma list of names and globs, in the order given (file order within a glob)."""
    chosen: list[str] = []
    for piece in (part.strip() for part in pattern.split(",")):
        if not piece:
            raise UsageError(f"{option}: empty column name in {pattern!r}")
        if any(ch in piece for ch in "*?["):
            matched = [name for name in names if fnmatch.fnmatchcase(name, piece)]
            if not matched:
                raise ColumnMappingError(f"{option}: no column matches {piece!r} (columns: {_column_listing(names)})")
        elif piece in names:
            matched = [piece]
        else:
            near = difflib.get_close_matches(piece, names, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (columns: {_column_listing(names)})"
            raise ColumnMappingError(f"{option}: no column {piece!r}{hint}")
        for name in matched:
            if name in chosen:
                raise ColumnMappingError(f"{option}: column {name!r} is chosen twice")
            chosen.append(name)
    return tuple(chosen)


def describe_binding(prepared: PreparedInput) -> str:
    """``features <- f00..f15 (16 columns, double->float32)``."""
    columns = prepared.columns
    named = columns[0] if len(columns) == 1 else f"{columns[0]}..{columns[-1]} ({len(columns)} columns"
    types = sorted(set(prepared.column_types))
    cast = f"{'/'.join(types)}->{prepared.dtype}"
    if len(columns) == 1:
        return f"{prepared.input} <- {named} ({cast}{', padded per batch' if prepared.padded else ''})"
    return f"{prepared.input} <- {named}, {cast})"


def type_name(kind: pa.DataType) -> str:
    """'double', 'list<int64>', 'fixed_size_list<float>[768]' (Arrow's own names, shorter)."""
    if pa.types.is_fixed_size_list(kind):
        return f"fixed_size_list<{type_name(kind.value_type)}>[{kind.list_size}]"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{type_name(kind.value_type)}>"
    return str(kind)


def column_kind(field: pa.Field, spec: TensorSpec, model: str) -> str:
    kind = field.type
    if _is_number(kind):
        return "scalar"
    if pa.types.is_fixed_size_list(kind) and _fixed_list_leaf_is_number(kind):
        return "fixed_list"
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
        _is_number(kind.value_type)
        or (pa.types.is_fixed_size_list(kind.value_type) and _fixed_list_leaf_is_number(kind.value_type))
    ):
        return "list"
    raise ColumnMappingError(
        f"{model}: column {field.name!r} has type {kind}, which cannot feed input {spec.name!r} "
        f"(numbers, bools, and lists of them can)"
    )


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _fixed_list_leaf_is_number(kind: pa.DataType) -> bool:
    while pa.types.is_fixed_size_list(kind):
        kind = kind.value_type
    return _is_number(kind)


def _column_listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … {len(names) - limit} more" if len(names) > limit else "")
