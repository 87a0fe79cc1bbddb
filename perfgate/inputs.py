"""Model inputs made from Parquet columns: which columns feed which input, and the tensors.

Each model input is fed by

1. ``--input NAME=COLS``: COLS is a comma list of column names or globs (``f*``,
   ``f0[0-9]``), taken in file order within each glob; or else
2. the column with the input's name.

Several scalar columns are stacked into one (rows, k) tensor. A fixed-size list column
becomes a (rows, k, …) tensor. A variable-length list column is padded, per batch, to
the longest row of the batch (or to the model's fixed length) with ``pad_value``. A row
of the wrong shape is reshaped to the model's declared per-row shape when the element
counts match (a flat list of 784 values feeds a [batch, 1, 28, 28] input).

Values are cast to the dtype the model declares. A cast that would change a value is an
error (1.5 into int64, 300 into uint8, 2**40 into float32), except rounding a float to a
narrower float, which is what every inference pipeline does; a float that would overflow
to infinity is still an error.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from perfgate.errors import ColumnMappingError, InputCastError, UsageError
from perfgate.results import PreparedInput
from perfgate.tensors import Shape, TensorSpec

@dataclass(frozen=True)
class InputBinding:
    """The columns that feed one model input, and the rule that chose them."""

    input: str
    columns: tuple[str, ...]
    rule: str  # "by name" or "--input NAME=COLS"


@dataclass(frozen=True)
class PreparedBatches:
    feeds: tuple[dict[str, np.ndarray], ...]
    inputs: tuple[PreparedInput, ...]
    dropped_rows: int  # rows after the last full batch


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


def build_batches(
    table: pa.Table,
    bindings: Sequence[InputBinding],
    specs: Sequence[TensorSpec],
    batch_size: int,
    *,
    pad_value: float = 0,
    model: str = "model",
) -> PreparedBatches:
    """The model's feeds, one dict per batch, in row order; a last partial batch is dropped."""
    rows = table.num_rows
    batches = rows // batch_size
    if batches == 0:
        raise UsageError(f"--batch-size {batch_size} is larger than the {rows} rows chosen from the data")
    by_name = {spec.name: spec for spec in specs}
    per_input: dict[str, list[np.ndarray]] = {}
    prepared = []
    for binding in bindings:
        spec = by_name[binding.input]
        _check_batch_dim(spec, batch_size, model)
        tensors, summary = _input_tensors(table, binding, spec, batch_size, batches, pad_value, model)
        per_input[binding.input] = tensors
        prepared.append(summary)
    feeds = tuple({name: tensors[i] for name, tensors in per_input.items()} for i in range(batches))
    return PreparedBatches(feeds, tuple(prepared), rows - batches * batch_size)


def cast_exactly(values: np.ndarray, dtype: str | np.dtype, what: str) -> np.ndarray:
    """``values`` as ``dtype``, or InputCastError when that would change a value."""
    source, target = values.dtype, np.dtype(dtype)
    if source == target:
        return values
    if source.kind not in "biuf" or target.kind not in "biuf":
        raise InputCastError(f"{what}: cannot feed {source} values to a {target} input")
    with np.errstate(all="ignore"):
        if target.kind == "b":
            bad = (values != 0) & (values != 1)
            if np.any(bad):
                raise InputCastError(f"{what}: {_example(values, bad)} not a bool (0 or 1)")
            return values.astype(target)
        if target.kind in "iu":
            if source.kind == "f":
                bad = ~np.isfinite(values) | (values != np.trunc(values))
                if np.any(bad):
                    raise InputCastError(f"{what}: {_example(values, bad)} not whole numbers, so {target} would change them")
            if source.kind != "b" and values.size:
                info = np.iinfo(target)
                bad = (values < info.min) | (values > info.max)
                if np.any(bad):
                    raise InputCastError(f"{what}: {_example(values, bad)} out of range for {target}")
            return values.astype(target)
        converted = values.astype(target)
        if source.kind in "iu":
            bad = converted.astype(source) != values
            if np.any(bad):
                raise InputCastError(f"{what}: {_example(values, bad)} not held exactly by {target}")
        elif source.kind == "f" and target.itemsize < source.itemsize:
            bad = np.isinf(converted) & np.isfinite(values)
            if np.any(bad):
                raise InputCastError(f"{what}: {_example(values, bad)} overflowing {target}")
        return converted


def describe_binding(prepared: PreparedInput) -> str:
    """``features <- f00..f15 (16 columns, double->float32)``."""
    columns = prepared.columns
    named = columns[0] if len(columns) == 1 else f"{columns[0]}..{columns[-1]} ({len(columns)} columns"
    types = sorted(set(prepared.column_types))
    cast = f"{'/'.join(types)}->{prepared.dtype}"
    if len(columns) == 1:
        return f"{prepared.input} <- {named} ({cast}{', padded per batch' if prepared.padded else ''})"
    return f"{prepared.input} <- {named}, {cast})"


def _input_tensors(
    table: pa.Table,
    binding: InputBinding,
    spec: TensorSpec,
    batch_size: int,
    batches: int,
    pad_value: float,
    model: str,
) -> tuple[list[np.ndarray], PreparedInput]:
    fields = [table.schema.field(name) for name in binding.columns]
    kinds = [_column_kind(field, spec, model) for field in fields]
    what = f"{model}: input {spec.name!r} from {_columns_text(binding.columns)}"
    if len(fields) > 1 and any(kind != "scalar" for kind in kinds):
        raise ColumnMappingError(f"{what}: only scalar columns can be stacked into one input; list columns feed an input alone")
    column_types = tuple(_type_name(field.type) for field in fields)
    rows = batches * batch_size
    if kinds[0] == "list":
        return _padded_tensors(table.column(binding.columns[0]), spec, batch_size, batches, pad_value, what, binding, column_types)

    if kinds[0] == "scalar":
        arrays = [_scalar_values(table.column(name), what)[:rows] for name in binding.columns]
        values = arrays[0] if len(arrays) == 1 else np.column_stack(arrays)
    else:
        values = _fixed_list_values(table.column(binding.columns[0]).combine_chunks(), what)[:rows]
    values = _fit_row_shape(values, spec, what)
    target = spec.dtype_for(values.dtype.kind)
    if target is not None:
        values = cast_exactly(values, target, what)
    values = np.ascontiguousarray(values)
    tensors = [values[i * batch_size : (i + 1) * batch_size] for i in range(batches)]
    summary = PreparedInput(
        spec.name, binding.columns, binding.rule, column_types, str(values.dtype), tuple(values.shape[1:]), False
    )
    return tensors, summary


def _padded_tensors(
    column: pa.ChunkedArray,
    spec: TensorSpec,
    batch_size: int,
    batches: int,
    pad_value: float,
    what: str,
    binding: InputBinding,
    column_types: tuple[str, ...],
) -> tuple[list[np.ndarray], PreparedInput]:
    array = column.combine_chunks()
    if array.null_count:
        raise ColumnMappingError(f"{what}: {array.null_count} rows are null")
    offsets = array.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    values = _fixed_list_values(array.flatten(), what)
    inner = values.shape[1:]
    fixed_length = None
    if spec.shape is not None:
        if len(spec.shape) != 2 + len(inner):
            raise ColumnMappingError(
                f"{what}: a variable-length list gives [batch, length{''.join(f', {d}' for d in inner)}] "
                f"but the input takes {_shape_text(spec.shape)}"
            )
        fixed_length = spec.shape[1]
        for got, wanted in zip(inner, spec.shape[2:]):
            if wanted is not None and wanted != got:
                raise ColumnMappingError(f"{what}: list elements have shape {inner} but the input takes {_shape_text(spec.shape)}")
    target = spec.dtype_for(values.dtype.kind)
    if target is not None:
        values = cast_exactly(values, target, what)
    pad = cast_exactly(np.array([pad_value]), values.dtype, f"{what}: --pad-value")[0]
    lengths = np.diff(offsets)
    tensors = []
    for index in range(batches):
        first, last = index * batch_size, (index + 1) * batch_size
        batch_lengths = lengths[first:last]
        longest = int(batch_lengths.max())
        if fixed_length is not None and longest > fixed_length:
            raise ColumnMappingError(
                f"{what}: a row holds {longest} elements but the input takes at most {fixed_length}"
            )
        length = fixed_length if fixed_length is not None else max(1, longest)
        tensor = np.full((batch_size, length, *inner), pad, dtype=values.dtype)
        tensor[np.arange(length) < batch_lengths[:, None]] = values[offsets[first] : offsets[last]]
        tensors.append(tensor)
    row_shape: Shape = (fixed_length, *inner)
    summary = PreparedInput(spec.name, binding.columns, binding.rule, column_types, str(values.dtype), row_shape, True)
    return tensors, summary


def _type_name(kind: pa.DataType) -> str:
    """'double', 'list<int64>', 'fixed_size_list<float>[768]' (Arrow's own names, shorter)."""
    if pa.types.is_fixed_size_list(kind):
        return f"fixed_size_list<{_type_name(kind.value_type)}>[{kind.list_size}]"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{_type_name(kind.value_type)}>"
    return str(kind)


def _column_kind(field: pa.Field, spec: TensorSpec, model: str) -> str:
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


def _scalar_values(column: pa.ChunkedArray, what: str) -> np.ndarray:
    if column.null_count:
        raise ColumnMappingError(f"{what}: column has {column.null_count} null values")
    return column.to_numpy()


def _fixed_list_values(array: pa.Array, what: str) -> np.ndarray:
    """(rows, d1, d2, …) from a (nested) fixed-size list array; a plain array gives (rows,)."""
    rows = len(array)
    dims: list[int] = []
    while pa.types.is_fixed_size_list(array.type):
        if array.null_count:
            raise ColumnMappingError(f"{what}: {array.null_count} lists are null")
        dims.append(array.type.list_size)
        array = array.flatten()
    if array.null_count:
        raise ColumnMappingError(f"{what}: {array.null_count} list elements are null")
    return array.to_numpy(zero_copy_only=False).reshape((rows, *dims))


def _fit_row_shape(values: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
    if spec.shape is None:
        return values
    target, source = spec.shape[1:], values.shape[1:]
    if len(target) == len(source) and all(t is None or t == s for t, s in zip(target, source)):
        return values
    count = math.prod(source)
    dynamic = [i for i, dim in enumerate(target) if dim is None]
    known = math.prod(dim for dim in target if dim is not None)
    if not dynamic and known == count:
        return values.reshape((values.shape[0], *target))
    if len(dynamic) == 1 and known and count % known == 0:
        filled = tuple(count // known if dim is None else dim for dim in target)
        return values.reshape((values.shape[0], *filled))
    wanted = "any number of" if dynamic else str(known)
    raise ColumnMappingError(
        f"{what}: the input takes {_shape_text(spec.shape)} ({wanted} values per row) "
        f"but the columns give {count} values per row"
    )


def _check_batch_dim(spec: TensorSpec, batch_size: int, model: str) -> None:
    if spec.shape is None:
        return
    if len(spec.shape) == 0:
        raise ColumnMappingError(f"{model}: input {spec.name!r} is a scalar; perfgate feeds batches of rows")
    declared = spec.shape[0]
    if declared is not None and declared != batch_size:
        raise UsageError(
            f"{model}: input {spec.name!r} has a fixed batch dimension of {declared}; --batch-size {batch_size} cannot feed it"
        )


def _example(values: np.ndarray, bad: np.ndarray) -> str:
    """'3 values, e.g. 1.5' for the values where ``bad`` holds."""
    flags = bad.ravel()
    count = int(np.count_nonzero(flags))
    first = values.ravel()[int(np.argmax(flags))].item()
    return f"{count} value{'s' if count != 1 else ''}, e.g. {first!r},"


def _shape_text(shape: Shape) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"


def _columns_text(columns: Sequence[str]) -> str:
    if len(columns) == 1:
        return f"column {columns[0]!r}"
    return f"columns {columns[0]!r}..{columns[-1]!r} ({len(columns)})"


def _column_listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … {len(names) - limit} more" if len(names) > limit else "")
