"""Columns to tensors: list columns whose rows all hold one length, exact casts of stacked
columns, and values that must not be timed (nulls, NaN, infinities), each named by row."""

import re

import numpy as np
import pyarrow as pa
import pytest

from perfgate.data.batches import build_batches
from perfgate.cli import _flag as cli_flag
from perfgate.errors import ColumnMappingError, InputCastError
from perfgate.data.inputs import bind_inputs
from perfgate.tensors import TensorSpec


def batches(tbl, specs, explicit=None, batch_size=2, **kwargs):
    bindings = bind_inputs({"reference": specs}, tbl.schema, explicit or {}, {}, labels={"reference": "model"})["reference"]
    return build_batches(tbl, bindings, specs, batch_size, model="model", **kwargs)


def list_column(rows, kind=pa.float32()):
    return pa.array([list(row) for row in rows], type=pa.list_(kind))


# --- a list column whose rows all hold the same number of values -----------------------------


def test_a_list_column_of_equal_rows_is_reshaped_to_the_input_shape():
    rows = np.arange(4 * 12, dtype=np.float32).reshape(4, 12)
    tbl = pa.table({"image": list_column(rows)})
    result = batches(tbl, [TensorSpec("image", "float32", (None, 2, 2, 3))])
    assert result.feeds[1]["image"].shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(result.feeds[1]["image"].reshape(2, 12), rows[2:])
    assert result.inputs[0].row_shape == (2, 2, 3) and not result.inputs[0].padded
    dynamic = batches(tbl, [TensorSpec("image", "float32", (None, 4, None))]).feeds[0]["image"]
    assert dynamic.shape == (2, 4, 3)


def test_only_the_rows_used_must_hold_the_same_number_of_values():
    rows = [range(12)] * 3 + [range(5)]  # the last row is past the last full batch
    result = batches(pa.table({"image": list_column(rows)}), [TensorSpec("image", "float32", (None, 2, 2, 3))], batch_size=3)
    assert len(result.feeds) == 1 and result.dropped_rows == 1


def test_list_rows_that_differ_name_the_first_row_that_differs_and_its_length():
    rows = [range(12), range(12), range(11), range(13)]
    spec = TensorSpec("image", "float32", (None, 2, 2, 3))
    with pytest.raises(ColumnMappingError, match=re.escape("row 2 holds 11 values, but input [?, 2, 2, 3] takes 12 a row")):
        batches(pa.table({"image": list_column(rows)}), [spec])
    with pytest.raises(ColumnMappingError, match="row 7 holds 11 values"):
        batches(pa.table({"image": list_column(rows)}), [spec], file_rows=np.array([3, 5, 7, 9]))
    dynamic = TensorSpec("image", "float32", (None, 4, None))
    with pytest.raises(ColumnMappingError, match=re.escape("row 2 holds 11 values where row 0 holds 12")):
        batches(pa.table({"image": list_column(rows)}), [dynamic])


# --- stacked columns cast exactly -------------------------------------------------------------


def test_an_int64_column_stacked_with_float_columns_is_cast_exactly():
    tbl = pa.table({"a": [0.5, 1.5], "big": np.array([2**40 + 1, 3], dtype=np.int64)})
    with pytest.raises(InputCastError, match=re.escape("column 'big': 1 value, e.g. 1099511627777, not held exactly by float32")):
        batches(tbl, [TensorSpec("x", "float32", (None, 2))], {"x": "a,big"})
    undeclared = pa.table({"a": [0.5, 1.5], "big": np.array([2**53 + 1, 3], dtype=np.int64)})
    with pytest.raises(InputCastError, match="not held exactly by float64"):
        batches(undeclared, [TensorSpec("x", None, (None, 2))], {"x": "a,big"})
    small = pa.table({"a": [0.5, 1.5], "n": np.array([2**24, 3], dtype=np.int64)})
    np.testing.assert_array_equal(batches(small, [TensorSpec("x", "float32", (None, 2))], {"x": "a,n"}).feeds[0]["x"],
                                  [[0.5, 2**24], [1.5, 3]])  # fmt: skip


# --- values that must not be timed -----------------------------------------------------------

NAN_TABLES = {
    "scalar": (pa.table({"a": [1.0, 2.0, 3.0, np.nan]}), TensorSpec("a", "float32", (None,))),
    "stacked": (pa.table({"b": [1.0] * 4, "a": [1.0, 2.0, 3.0, -np.inf]}), TensorSpec("x", "float32", (None, 2))),
    "list": (pa.table({"a": list_column([[1.0, 2.0], [3.0], [4.0], [5.0, np.inf]])}), TensorSpec("a", "float32", (None, None))),
    "equal lists": (pa.table({"a": list_column([[1.0, 2.0]] * 3 + [[np.nan, 1.0]])}), TensorSpec("a", "float32", (None, 2, 1))),
    "fixed list": (
        pa.table({"a": pa.FixedSizeListArray.from_arrays(pa.array([1.0] * 7 + [np.nan]), 2)}),
        TensorSpec("a", "float32", (None, 2)),
    ),
}


@pytest.mark.parametrize("kind", NAN_TABLES)
def test_nan_or_infinite_values_are_refused_naming_the_column_and_the_first_row(kind):
    tbl, spec = NAN_TABLES[kind]
    explicit = {"x": "b,a"} if spec.name == "x" else {}
    with pytest.raises(ColumnMappingError) as info:
        batches(tbl, [spec], explicit)
    message = info.value.message
    assert "column 'a': 1 value is NaN or infinite, in row 3" in message
    assert info.value.in_words(cli_flag).endswith("fix the data, or pass --allow-nonfinite to time them anyway")
    assert info.value.exit_code == 2
    fed = batches(tbl, [spec], explicit, allow_nonfinite=True).feeds[1][spec.name]
    assert not np.all(np.isfinite(fed))


def test_nonfinite_values_past_the_last_full_batch_are_not_used_so_not_refused():
    assert len(batches(pa.table({"a": [1.0, 2.0, np.nan]}), [TensorSpec("a", "float32", (None,))]).feeds) == 1


def test_nonfinite_values_still_cannot_become_integers():
    with pytest.raises(InputCastError, match="not whole numbers"):
        batches(pa.table({"a": [1.0, np.nan]}), [TensorSpec("a", "int64", (None,))], allow_nonfinite=True)


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1.0, None, 3.0, None]),
        pa.array([[1.0], None, [2.0], [3.0]], type=pa.list_(pa.float32())),
        pa.array([[1.0], [None], [2.0], [3.0]], type=pa.list_(pa.float32())),
        pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0, 8.0]), 2),
    ],
    ids=["scalar", "null list", "null element", "fixed list"],
)
def test_nulls_are_refused_naming_the_column_and_the_first_row(column):
    spec = TensorSpec("a", "float32", (None,) if pa.types.is_floating(column.type) else (None, None))
    with pytest.raises(ColumnMappingError, match=r"column 'a': (1 null value, in row 1|2 null values, the first in row 1)"):
        batches(pa.table({"a": column}), [spec])
