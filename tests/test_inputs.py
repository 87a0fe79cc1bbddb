import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import perfgate.data.dataset as dataset_module
from perfgate.data.dataset import ParquetDataset
from perfgate.errors import ColumnMappingError, DataError, InputCastError, UsageError
from perfgate.data.batches import build_batches, cast_exactly
from perfgate.data.inputs import bind_inputs, expand_columns, parse_input_options
from perfgate.tensors import TensorSpec

NAMES = ["id", "f00", "f01", "f10", "g0", "label"]


def table(**columns):
    return pa.table(columns)


def spec(name="x", dtype="float32", shape=(None, 4)):
    return TensorSpec(name, dtype, shape)


def bind_one(specs, schema, explicit, model="model"):
    return bind_inputs({"reference": specs}, schema, explicit, {}, labels={"reference": model})["reference"]


def batches(tbl, explicit, specs, batch_size=2, **kwargs):
    return build_batches(tbl, bind_one(specs, tbl.schema, explicit), specs, batch_size, **kwargs)


# --- which columns feed which input ------------------------------------------------------


def test_input_options_parse_and_reject_bad_forms():
    assert parse_input_options(["X=f*", " ids = input_ids "]) == {"X": "f*", "ids": "input_ids"}
    for bad in ("=f*", "X=", "", " "):
        with pytest.raises(UsageError, match="NAME=COLS"):
            parse_input_options([bad])
    with pytest.raises(UsageError, match="given twice"):
        parse_input_options(["X=a", "X=b"])


def test_globs_keep_file_order_and_lists_keep_the_given_order():
    assert expand_columns("f*", NAMES, option="--input X=f*") == ("f00", "f01", "f10")
    assert expand_columns("f1*,f00", NAMES, option="o") == ("f10", "f00")
    assert expand_columns("f0[0-9],g0", NAMES, option="o") == ("f00", "f01", "g0")


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("h*", "no column matches 'h*'"),
        ("lable", "did you mean 'label'"),
        ("zzz", "columns: id, f00"),
        ("f00,f*", "chosen twice"),
        ("f00,,f01", "empty column name"),
    ],
)
def test_bad_column_choices_name_the_column(pattern, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        expand_columns(pattern, NAMES, option=f"--input X={pattern}")


def test_inputs_map_by_name_unless_told_otherwise():
    schema = pa.schema([("input_ids", pa.int64()), ("mask", pa.int64()), ("m2", pa.int64())])
    specs = [spec("input_ids", "int64", (None,)), spec("mask", "int64", (None,))]
    bound = bind_one(specs, schema, {"mask": "m2"}, model="reference r.onnx")
    assert [(b.input, b.columns, b.rule) for b in bound] == [
        ("input_ids", ("input_ids",), "by name"),
        ("mask", ("m2",), "--input mask=m2"),
    ]


def test_an_input_without_a_column_is_a_mapping_error_naming_model_input_and_columns():
    schema = pa.schema([("id", pa.int64()), ("f0", pa.float64())])
    with pytest.raises(ColumnMappingError) as info:
        bind_one([spec("features")], schema, {}, model="candidate c.onnx")
    message = info.value.message
    assert "candidate c.onnx" in message and "'features'" in message and "--input features=COLS" in message
    assert "columns: id, f0" in message
    assert info.value.exit_code == 2


def test_a_model_without_inputs_cannot_be_fed():
    with pytest.raises(ColumnMappingError, match="declares no inputs"):
        bind_one([], pa.schema([("f0", pa.float64())]), {}, model="reference r.onnx")


def test_input_option_for_an_input_no_model_has():
    schema = pa.schema([(name, pa.float64()) for name in ("f0", "f1", "f2", "f3")])
    models = {"reference": [spec("features")], "candidate": [spec("features")]}
    with pytest.raises(ColumnMappingError, match="no model has an input called 'X'"):
        bind_inputs(models, schema, {"X": "f*"}, {})
    one_has_it = bind_inputs({"reference": [spec("features")], "candidate": [spec("other")]}, schema, {"features": "f*"}, {})
    assert one_has_it["candidate"][0].columns == ("f0", "f1", "f2", "f3")


# --- tensors -------------------------------------------------------------------------------


def test_scalar_columns_stack_in_order_and_cast_to_the_model_dtype():
    tbl = table(a=[1.0, 2.0, 3.0, 4.0], b=[10.0, 20.0, 30.0, 40.0], id=[0, 1, 2, 3])
    result = batches(tbl, {"x": "b,a"}, [spec(shape=(None, 2))])
    assert len(result.feeds) == 2
    first = result.feeds[0]["x"]
    assert first.dtype == np.float32 and first.shape == (2, 2)
    np.testing.assert_array_equal(first, [[10, 1], [20, 2]])
    np.testing.assert_array_equal(result.feeds[1]["x"], [[30, 3], [40, 4]])
    assert result.inputs[0].column_types == ("double", "double")
    assert result.inputs[0].dtype == "float32"


def test_undeclared_dtypes_feed_floats_as_the_model_float_dtype_and_keep_ints():
    tbl = table(a=[1.5, 2.5], ids=np.array([7, 8], dtype=np.int64))
    undeclared = [TensorSpec("x", None, None, float_dtype="float32"), TensorSpec("ids", None, None, float_dtype="float32")]
    feed = batches(tbl, {"x": "a"}, undeclared).feeds[0]
    assert feed["x"].dtype == np.float32 and feed["ids"].dtype == np.int64
    np.testing.assert_array_equal(feed["ids"], [7, 8])
    plain = batches(tbl, {"x": "a"}, [TensorSpec("x", None, None)]).feeds[0]["x"]
    assert plain.dtype == np.float64


def test_rows_keep_their_order_across_batches():
    ids = np.arange(10, dtype=np.int64)
    result = batches(table(id=ids), {}, [spec("id", "int64", (None,))], batch_size=3)
    assert np.concatenate([feed["id"] for feed in result.feeds]).tolist() == list(range(9))
    assert result.dropped_rows == 1


def test_a_single_scalar_column_fits_rank_1_and_rank_2_inputs():
    tbl = table(v=[1.0, 2.0])
    assert batches(tbl, {"x": "v"}, [spec(shape=(None,))]).feeds[0]["x"].shape == (2,)
    assert batches(tbl, {"x": "v"}, [spec(shape=(None, 1))]).feeds[0]["x"].shape == (2, 1)


def test_fixed_size_list_columns_and_flat_lists_reshaped_to_the_declared_shape():
    rows = np.arange(24, dtype=np.float32).reshape(4, 6)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), 6)
    tbl = pa.table({"emb": flat})
    plain = batches(tbl, {"x": "emb"}, [spec(shape=(None, 6))]).feeds[1]["x"]
    np.testing.assert_array_equal(plain, rows[2:4])
    image = batches(tbl, {"x": "emb"}, [spec(shape=(None, 1, 2, 3))]).feeds[0]["x"]
    assert image.shape == (2, 1, 2, 3)
    np.testing.assert_array_equal(image.reshape(2, 6), rows[:2])
    dynamic = batches(tbl, {"x": "emb"}, [spec(shape=(None, 3, None))]).feeds[0]["x"]
    assert dynamic.shape == (2, 3, 2)


def test_nested_fixed_size_lists_become_multi_dimensional_tensors():
    inner = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12, dtype=np.float64)), 3)
    nested = pa.FixedSizeListArray.from_arrays(inner, 2)  # 2 rows of 2x3
    result = batches(pa.table({"m": nested}), {"x": "m"}, [spec(shape=(None, 2, 3))])
    np.testing.assert_array_equal(result.feeds[0]["x"], np.arange(12).reshape(2, 2, 3))


def test_variable_length_lists_are_padded_per_batch():
    tbl = pa.table({"ids": pa.array([[1, 2], [3], [4, 5, 6, 7], [8]], type=pa.list_(pa.int64()))})
    result = batches(tbl, {}, [spec("ids", "int64", (None, None))], pad_value=-1)
    np.testing.assert_array_equal(result.feeds[0]["ids"], [[1, 2], [3, -1]])
    np.testing.assert_array_equal(result.feeds[1]["ids"], [[4, 5, 6, 7], [8, -1, -1, -1]])
    assert result.inputs[0].padded and result.inputs[0].row_shape == (None,)


def test_variable_length_lists_pad_to_a_fixed_model_length_and_refuse_longer_rows():
    tbl = pa.table({"ids": pa.array([[1, 2], [3]], type=pa.large_list(pa.int32()))})
    padded = batches(tbl, {}, [spec("ids", "int64", (None, 4))]).feeds[0]["ids"]
    np.testing.assert_array_equal(padded, [[1, 2, 0, 0], [3, 0, 0, 0]])
    assert padded.dtype == np.int64
    with pytest.raises(ColumnMappingError, match="holds 2 elements but the input takes at most 1"):
        batches(tbl, {}, [spec("ids", "int64", (None, 1))])


def test_variable_length_lists_of_vectors_pad_along_the_sequence():
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(10, dtype=np.float32)), 2)
    offsets = pa.array([0, 1, 5], type=pa.int32())
    column = pa.ListArray.from_arrays(offsets, vectors)  # rows of 1 and 4 vectors of 2
    tensor = batches(pa.table({"seq": column}), {}, [spec("seq", "float32", (None, None, 2))]).feeds[0]["seq"]
    assert tensor.shape == (2, 4, 2)
    np.testing.assert_array_equal(tensor[0], [[0, 1], [0, 0], [0, 0], [0, 0]])
    np.testing.assert_array_equal(tensor[1], [[2, 3], [4, 5], [6, 7], [8, 9]])


def test_a_pad_value_the_dtype_cannot_hold_is_an_error():
    tbl = pa.table({"ids": pa.array([[1, 2], [3]], type=pa.list_(pa.int64()))})
    with pytest.raises(InputCastError, match="--pad-value"):
        batches(tbl, {}, [spec("ids", "int64", (None, None))], pad_value=0.5)


@pytest.mark.parametrize(
    "tbl, explicit, the_spec, error, message",
    [
        (table(a=[1.0] * 4), {"x": "a"}, spec(shape=(None, 16)), ColumnMappingError, "16 values per row"),
        (table(s=["a", "b"]), {"x": "s"}, spec(shape=(None,)), ColumnMappingError, "type string"),
        (table(a=pa.array([1.0, None])), {"x": "a"}, spec(shape=(None,)), ColumnMappingError, "1 null value, in row 1"),
        (pa.table({"l": pa.array([[1.0], [2.0]]), "a": [1.0, 2.0]}), {"x": "l,a"}, spec(shape=(None, 2)),
         ColumnMappingError, "only scalar columns can be stacked"),
        (table(a=[1.0, 2.0]), {"x": "a"}, spec(shape=()), ColumnMappingError, "is a scalar"),
        (table(a=[1.0, 2.0]), {"x": "a"}, spec(shape=(1,)), UsageError, "fixed batch dimension of 1"),
        (pa.table({"ids": pa.array([[1], [2, 3]])}), {}, spec("ids", "int64", (None, 2, 2)),
         ColumnMappingError, re.escape("row 0 holds 1 value, but input [?, 2, 2] takes 4 a row")),
    ],
)  # fmt: skip
def test_columns_that_cannot_feed_the_input(tbl, explicit, the_spec, error, message):
    with pytest.raises(error, match=message):
        batches(tbl, explicit, [the_spec])


def test_batch_size_larger_than_the_rows_is_a_usage_error():
    with pytest.raises(UsageError, match="--batch-size 8 is larger than the 4 rows"):
        batches(table(a=[1.0, 2.0, 3.0, 4.0]), {"x": "a"}, [spec(shape=(None,))], batch_size=8)


# --- casts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, dtype",
    [
        (np.array([1.0, 2.0, -3.0]), "int64"),
        (np.array([0.1, 1e30]), "float32"),  # rounding to a narrower float is accepted
        (np.array([1, 2, 255]), "uint8"),
        (np.array([2**24]), "float32"),
        (np.array([True, False]), "float32"),
        (np.array([0.0, 1.0]), "bool"),
        (np.array([1.5, np.nan]), "float64"),
    ],
)
def test_exact_casts_are_allowed(values, dtype):
    cast = cast_exactly(values, dtype, "x")
    assert cast.dtype == np.dtype(dtype)
    if np.dtype(dtype).kind != "f" or values.dtype.kind != "f":
        np.testing.assert_array_equal(cast.astype(values.dtype), values)


@pytest.mark.parametrize(
    "values, dtype, message",
    [
        (np.array([1.0, 1.5, 2.5]), "int64", "2 values, e.g. 1.5, not whole numbers"),
        (np.array([1.0, np.nan]), "int32", "not whole numbers"),
        (np.array([1, 300]), "uint8", "out of range for uint8"),
        (np.array([-1]), "uint32", "out of range"),
        (np.array([2**40 + 1]), "float32", "not held exactly by float32"),
        (np.array([1e39]), "float32", "overflowing float32"),
        (np.array([0.5]), "bool", "not a bool"),
        (np.array(["a"]), "float32", "cannot feed"),
    ],
)
def test_lossy_or_impossible_casts_are_errors(values, dtype, message):
    with pytest.raises(InputCastError, match=message):
        cast_exactly(values, dtype, "candidate: input 'x' from column 'v'")


# --- the Parquet file ------------------------------------------------------------------------


def write(tmp_path, rows=1000, row_group_size=128):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": np.arange(rows), "v": np.arange(rows) * 2.0}), path, row_group_size=row_group_size)
    return path


def test_row_sampling_is_seeded_distinct_and_in_file_order(tmp_path):
    data = ParquetDataset(write(tmp_path))
    first = data.select_rows(50, seed=3)
    assert first.count == 50 and first.total_rows == 1000
    assert np.array_equal(first.indices, data.select_rows(50, seed=3).indices)
    assert not np.array_equal(first.indices, data.select_rows(50, seed=4).indices)
    assert np.all(np.diff(first.indices) > 0)
    assert data.select_rows(5000, seed=0).indices is None  # more than the file: all rows


def test_reading_chosen_rows_streams_across_row_groups_and_record_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_module, "_READ_BATCH_ROWS", 7)
    data = ParquetDataset(write(tmp_path, rows=1000, row_group_size=64))
    selection = data.select_rows(123, seed=9)
    result = data.read(["v", "id"], selection)
    assert result.column_names == ["v", "id"]
    assert result.column("id").to_pylist() == selection.indices.tolist()
    assert result.column("v").to_pylist() == (selection.indices * 2.0).tolist()
    everything = data.read(["id"], data.select_rows(None, seed=0))
    assert everything.column("id").to_pylist() == list(range(1000))


def test_unreadable_data_is_a_runtime_error_naming_the_file(tmp_path):
    with pytest.raises(DataError, match="no such file") as info:
        ParquetDataset(tmp_path / "absent.parquet")
    assert info.value.exit_code == 3
    text = tmp_path / "notes.parquet"
    text.write_text("id,v\n1,2\n")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        ParquetDataset(text)
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"v": pa.array([], pa.float64())}), empty)
    with pytest.raises(DataError, match="has no rows"):
        ParquetDataset(empty)
    with pytest.raises(DataError, match="it is a directory, not a Parquet file"):
        ParquetDataset(tmp_path)
    (tmp_path / "zero.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=re.escape("the file is empty (0 bytes)")):
        ParquetDataset(tmp_path / "zero.parquet")
