"""A model's batches from the chosen rows of the columns that feed it (see ``perfgate.inputs``).

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

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from perfgate.errors import ColumnMappingError, InputCastError, UsageError
from perfgate.inputs import InputBinding, column_kind, type_name
from perfgate.results import PreparedInput
from perfgate.tensors import Shape, TensorSpec


@dataclass(frozen=True)
class PreparedBatches:
    feeds: tuple[dict[str, np.ndarray], ...]
    inputs: tuple[PreparedInput, ...]
    dropped_rows: int  # rows after the last full batch


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
    kinds = [column_kind(field, spec, model) for field in fields]
    what = f"{model}: input {spec.name!r} from {_columns_text(binding.columns)}"
    if len(fields) > 1 and any(kind != "scalar" for kind in kinds):
        raise ColumnMappingError(f"{what}: only scalar columns can be stacked into one input; list columns feed an input alone")
    column_types = tuple(type_name(field.type) for field in fields)
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
