"""A model's batches from the chosen rows of the columns that feed it (see ``perfgate.data.inputs``).

Several scalar columns are stacked into one (rows, k) tensor, each cast exactly on its
own. A fixed-size list column becomes a (rows, k, …) tensor. A variable-length list column
is padded, per batch, to the longest row of the batch (or to the model's fixed length)
with ``pad_value``, where the input is a sequence ([batch, length, …]); where it is not
(an image, [batch, 32, 32, 3]), every row used must hold the same number of values, and
the column is then a tensor like a fixed-size list's. A row of the wrong shape is
reshaped to the model's declared per-row shape when the element counts match (a flat
list of 784 values feeds a [batch, 1, 28, 28] input).

Values are cast to the dtype the model declares. A cast that would change a value is an
error (1.5 into int64, 300 into uint8, 2**40 + 1 into float32), except rounding a float to
a narrower float, which is what every inference pipeline does; a float that would
overflow to infinity is still an error. Nulls are errors, and so are NaN and infinite
values unless ``allow_nonfinite``: a model's time on them need not be its time on real
data. Errors name the column and the first row concerned, counted from 0 in the file.

Only the rows that are fed are read here: rows past the last full batch are never checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from perfgate.errors import ColumnMappingError, InputCastError, UsageError, option
from perfgate.data.inputs import InputBinding, column_kind, type_name
from perfgate.results import PreparedInput
from perfgate.tensors import Shape, TensorSpec


@dataclass(frozen=True)
class PreparedBatches:
    feeds: tuple[dict[str, np.ndarray], ...]
    inputs: tuple[PreparedInput, ...]
    dropped_rows: int  # rows after the last full batch


@dataclass(frozen=True)
class _Rows:
    """How the rows being fed are numbered in messages, and whether NaN may be fed."""

    file_rows: np.ndarray | None  # the file's row of each table row; None: the same
    allow_nonfinite: bool

    def number(self, index: int) -> int:
        return int(index if self.file_rows is None else self.file_rows[index])


def build_batches(
    table: pa.Table,
    bindings: Sequence[InputBinding],
    specs: Sequence[TensorSpec],
    batch_size: int,
    *,
    pad_value: float = 0,
    model: str = "model",
    allow_nonfinite: bool = False,
    file_rows: np.ndarray | None = None,
) -> PreparedBatches:
    """The model's feeds, one dict per batch, in row order; a last partial batch is dropped.
    ``file_rows``: the file's row number of each row of ``table`` (for messages)."""
    rows = table.num_rows
    batches = rows // batch_size
    if batches == 0:
        raise UsageError(f"--batch-size {batch_size} is larger than the {rows} rows chosen from the data")
    used = table.slice(0, batches * batch_size)
    numbering = _Rows(file_rows, allow_nonfinite)
    by_name = {spec.name: spec for spec in specs}
    per_input: dict[str, list[np.ndarray]] = {}
    prepared = []
    for binding in bindings:
        spec = by_name[binding.input]
        _check_batch_dim(spec, batch_size, model)
        tensors, summary = _input_tensors(used, binding, spec, batch_size, pad_value, model, numbering)
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


def _input_tensors(
    table: pa.Table,
    binding: InputBinding,
    spec: TensorSpec,
    batch_size: int,
    pad_value: float,
    model: str,
    rows: _Rows,
) -> tuple[list[np.ndarray], PreparedInput]:
    fields = [table.schema.field(name) for name in binding.columns]
    kinds = [column_kind(field, spec, model) for field in fields]
    what = f"{model}: input {spec.name!r} from {_columns_text(binding.columns)}"
    if len(fields) > 1 and any(kind != "scalar" for kind in kinds):
        raise ColumnMappingError(f"{what}: only scalar columns can be stacked into one input; list columns feed an input alone")
    column_types = tuple(type_name(field.type) for field in fields)
    if kinds[0] == "scalar":
        values = _stacked(table, binding.columns, spec, model, rows)
    elif kinds[0] == "fixed_list":
        values = _fixed_list_values(table.column(binding.columns[0]).combine_chunks(), what, rows.number)
        _refuse_nonfinite(values, what, rows)
    else:
        lengths, flat = _list_parts(table.column(binding.columns[0]).combine_chunks(), what, rows)
        if spec.shape is None or len(spec.shape) == 2 + len(flat.shape[1:]):  # [batch, length, *inner]: a sequence
            tensors, row_shape = _padded_tensors(flat, lengths, spec, batch_size, pad_value, what)
            return tensors, PreparedInput(
                spec.name, binding.columns, binding.rule, column_types, str(tensors[0].dtype), row_shape, True
            )
        values = _equal_rows(flat, lengths, spec.shape, what, rows)
    values = _fit_row_shape(values, spec, what)
    target = spec.dtype_for(values.dtype.kind)
    if target is not None:
        values = cast_exactly(values, target, what)
    values = np.ascontiguousarray(values)
    tensors = [values[i : i + batch_size] for i in range(0, len(values), batch_size)]
    summary = PreparedInput(
        spec.name, binding.columns, binding.rule, column_types, str(values.dtype), tuple(values.shape[1:]), False
    )
    return tensors, summary


def _stacked(table: pa.Table, columns: Sequence[str], spec: TensorSpec, model: str, rows: _Rows) -> np.ndarray:
    """Scalar columns as (rows,) or (rows, k), each cast exactly to the input's dtype first:
    stacking an int64 column with float columns would round it to a float silently."""
    named = []
    for name in columns:
        what = f"{model}: input {spec.name!r} from column {name!r}"
        column = table.column(name)
        if column.null_count:
            _refuse_nulls(column.is_null().to_numpy(zero_copy_only=False), column.null_count, what, rows.number)
        values = column.to_numpy()
        _refuse_nonfinite(values, what, rows)
        named.append((what, values))
    common = np.result_type(*(values for _, values in named))
    target = spec.dtype_for(common.kind) or common
    cast = [cast_exactly(values, target, what) for what, values in named]
    return cast[0] if len(cast) == 1 else np.column_stack(cast)


def _list_parts(array: pa.Array, what: str, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """A variable-length list column's row lengths, and its items, (items, *inner)."""
    if array.null_count:
        _refuse_nulls(array.is_null().to_numpy(zero_copy_only=False), array.null_count, what, rows.number)
    offsets = array.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]

    def row_of_item(item: int) -> int:
        return rows.number(int(np.searchsorted(offsets, item, side="right")) - 1)

    flat = _fixed_list_values(array.flatten(), what, row_of_item)
    _refuse_nonfinite(flat, what, rows, row_of_item)
    return np.diff(offsets), flat


def _equal_rows(flat: np.ndarray, lengths: np.ndarray, shape: Shape, what: str, rows: _Rows) -> np.ndarray:
    """(rows, length, *inner) where every row holds ``length`` items: an input of ``shape``
    that is no sequence (an image) can take a list column only so."""
    inner = flat.shape[1:]
    row_dims = shape[1:]
    per_item = math.prod(inner)
    wanted = None
    if None not in row_dims and math.prod(row_dims) % per_item == 0:
        wanted = math.prod(row_dims) // per_item
    expected = wanted if wanted is not None else int(lengths[0])
    differs = lengths != expected
    if np.any(differs):
        index = int(np.argmax(differs))
        held = f"row {rows.number(index)} holds {_count(int(lengths[index]), inner)}"
        if wanted is not None:
            raise ColumnMappingError(
                f"{what}: {held}, but input {_shape_text(shape)} takes {expected} a row; "
                f"a list column feeds it only where every row used holds as many"
            )
        raise ColumnMappingError(
            f"{what}: {held} where row {rows.number(0)} holds {expected}; a list column feeds input "
            f"{_shape_text(shape)} only where every row used holds as many"
        )
    return flat.reshape((len(lengths), expected, *inner))


def _padded_tensors(
    flat: np.ndarray, lengths: np.ndarray, spec: TensorSpec, batch_size: int, pad_value: float, what: str
) -> tuple[list[np.ndarray], Shape]:
    inner = flat.shape[1:]
    fixed_length = None
    if spec.shape is not None:
        fixed_length = spec.shape[1]
        for got, wanted in zip(inner, spec.shape[2:]):
            if wanted is not None and wanted != got:
                raise ColumnMappingError(f"{what}: list elements have shape {inner} but the input takes {_shape_text(spec.shape)}")
    target = spec.dtype_for(flat.dtype.kind)
    values = flat if target is None else cast_exactly(flat, target, what)
    pad = cast_exactly(np.array([pad_value]), values.dtype, f"{what}: --pad-value")[0]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tensors = []
    for first in range(0, len(lengths), batch_size):
        last = first + batch_size
        batch_lengths = lengths[first:last]
        longest = int(batch_lengths.max())
        if fixed_length is not None and longest > fixed_length:
            raise ColumnMappingError(f"{what}: a row holds {longest} elements but the input takes at most {fixed_length}")
        length = fixed_length if fixed_length is not None else max(1, longest)
        tensor = np.full((batch_size, length, *inner), pad, dtype=values.dtype)
        tensor[np.arange(length) < batch_lengths[:, None]] = values[offsets[first] : offsets[last]]
        tensors.append(tensor)
    return tensors, (fixed_length, *inner)


def _fixed_list_values(array: pa.Array, what: str, row_of: Callable[[int], int]) -> np.ndarray:
    """(items, d1, d2, …) from a (nested) fixed-size list array; a plain array gives (items,).
    ``row_of``: the file row of an item, for messages."""
    items = len(array)
    dims: list[int] = []
    while pa.types.is_fixed_size_list(array.type):
        if array.null_count:
            _refuse_nulls(_item_flags(array, items, math.prod(dims)), array.null_count, what, row_of)
        dims.append(array.type.list_size)
        array = array.flatten()
    if array.null_count:
        _refuse_nulls(_item_flags(array, items, math.prod(dims)), array.null_count, what, row_of)
    return array.to_numpy(zero_copy_only=False).reshape((items, *dims))


def _item_flags(array: pa.Array, items: int, per_item: int) -> np.ndarray:
    """Which items hold a null, from the nulls of ``array`` (``per_item`` entries an item)."""
    return array.is_null().to_numpy(zero_copy_only=False).reshape(items, per_item).any(axis=1)


def _refuse_nulls(item_flags: np.ndarray, count: int, what: str, row_of: Callable[[int], int]) -> None:
    row = row_of(int(np.argmax(item_flags)))
    raise ColumnMappingError(f"{what}: {count} null value{'s' if count != 1 else ''}, {_first(count)} row {row}")


def _refuse_nonfinite(values: np.ndarray, what: str, rows: _Rows, row_of: Callable[[int], int] | None = None) -> None:
    if rows.allow_nonfinite or values.dtype.kind != "f" or values.size == 0:
        return
    bad = ~np.isfinite(values)
    count = int(np.count_nonzero(bad))
    if count:
        item = int(np.argmax(bad.reshape(len(values), -1).any(axis=1)))
        row = row_of(item) if row_of is not None else rows.number(item)
        raise ColumnMappingError(
            f"{what}: {count} value{' is' if count == 1 else 's are'} NaN or infinite, {_first(count)} row {row}; "
            f"fix the data, or pass {option('allow_nonfinite')} to time them anyway"
        )


def _first(count: int) -> str:
    return "in" if count == 1 else "the first in"


def _count(length: int, inner: tuple[int, ...]) -> str:
    unit = "value" if not inner else f"element of shape {list(inner)}"
    return f"{length} {unit}{'s' if length != 1 else ''}"


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
