"""Which columns feed which input when the two models name their inputs differently, or
when the file names no column like the input: the binding rules, one model side at a time
and across the two."""

import re

import pyarrow as pa
import pytest

from perfgate.cli import _flag as cli_flag
from perfgate.config import CompareConfig
from perfgate.errors import ColumnMappingError, UsageError
from perfgate.data.inputs import bind_inputs, describe_binding, describe_pairing, parse_input_options
from perfgate.results import PreparedInput
from perfgate.tensors import TensorSpec

IMAGE = pa.list_(pa.float32())


def image(name, shape=(None, 32, 32, 3)):
    return TensorSpec(name, "float32", shape)


def bind(reference, candidate, schema, shared=None, per_side=None, set_aside=()):
    return bind_inputs(
        {"reference": reference, "candidate": candidate}, schema, shared or {}, per_side or {},
        labels={"reference": "reference r.onnx", "candidate": "candidate c.onnx"}, set_aside=set_aside,
    )  # fmt: skip


def summary(bound):
    return {side: [(b.input, b.columns, b.rule) for b in bindings] for side, bindings in bound.items()}


# --- one input each, named differently --------------------------------------------------


def test_the_one_column_that_can_feed_a_model_s_one_input_binds_without_flags():
    schema = pa.schema([("id", pa.int64()), ("image", IMAGE), ("label", pa.int64()), ("path", pa.string())])
    bound = bind([image("input_layer")], [image("keras_tensor")], schema)
    assert summary(bound) == {
        "reference": [("input_layer", ("image",), "the only column that can feed it")],
        "candidate": [("keras_tensor", ("image",), "the only column that can feed it")],
    }


@pytest.mark.parametrize("aside", ["id", "ID", "label", "labels", "target", "y", "index", "__index_level_0__"])
def test_ids_labels_and_the_pandas_index_are_set_aside(aside):
    schema = pa.schema([(aside, pa.list_(pa.float32())), ("pixels", IMAGE)])
    bound = bind([image("input.1")], [image("x")], schema)
    assert bound["candidate"][0].columns == ("pixels",)


def test_the_size_column_is_set_aside():
    schema = pa.schema([("tokens", pa.list_(pa.int64())), ("n_tokens", pa.list_(pa.int64()))])
    spec = TensorSpec("input_ids", "int64", (None, None))
    bound = bind([spec], [TensorSpec("ids", "int64", (None, None))], schema, set_aside=["n_tokens"])
    assert bound["reference"][0].columns == ("tokens",)


def test_scalar_columns_cannot_feed_an_input_that_takes_more_than_one_value_per_row():
    schema = pa.schema([("age", pa.float64()), ("image", IMAGE), ("n_tokens", pa.int64())])
    bound = bind([image("a")], [image("b")], schema)
    assert bound["reference"][0].columns == ("image",)
    vector = pa.schema([("age", pa.float64()), ("image", IMAGE)])
    assert bind([image("a", (None,))], [image("b", (None,))], vector)["candidate"][0].columns == ("age",)


def test_several_columns_that_could_feed_the_input_are_an_error_that_lists_them():
    schema = pa.schema([("id", pa.int64()), ("left", IMAGE), ("right", IMAGE)])
    with pytest.raises(ColumnMappingError) as info:
        bind([image("input_layer")], [image("input_layer")], schema)
    message = info.value.message
    assert message.startswith("reference r.onnx: no column is named like input 'input_layer'")
    assert "2 columns could feed it (left, right)" in message and "--input COLS" in message


def test_per_side_options_bind_each_model_on_its_own():
    schema = pa.schema([("left", IMAGE), ("right", IMAGE)])
    bound = bind(
        [image("input_layer")], [image("keras_tensor")], schema,
        per_side={"reference": {"input_layer": "left"}, "candidate": {"keras_tensor": "right"}},
    )  # fmt: skip
    assert summary(bound) == {
        "reference": [("input_layer", ("left",), "--reference-input input_layer=left")],
        "candidate": [("keras_tensor", ("right",), "--candidate-input keras_tensor=right")],
    }


def test_an_unnamed_input_option_feeds_each_model_s_only_input():
    schema = pa.schema([("left", IMAGE), ("right", IMAGE)])
    bound = bind([image("input_layer")], [image("keras_tensor")], schema, shared={"": "right"})
    assert [b.columns for side in bound.values() for b in side] == [("right",), ("right",)]
    assert bound["reference"][0].rule == "--input right"
    per_side = bind([image("a")], [image("b")], schema, per_side={"candidate": {"": "left"}}, shared={"": "right"})
    assert per_side["candidate"][0].rule == "--candidate-input left" and per_side["reference"][0].columns == ("right",)


def test_an_unnamed_input_option_for_a_model_with_several_inputs_is_an_error():
    schema = pa.schema([("a", pa.float32()), ("b", pa.float32())])
    two = [image("a", (None,)), image("b", (None,))]
    with pytest.raises(ColumnMappingError, match=re.escape("--input b names no input, but reference r.onnx has 2 (a, b)")):
        bind(two, [image("x", (None,))], schema, shared={"": "b"})


def test_a_per_side_option_must_name_an_input_of_its_own_model():
    schema = pa.schema([("image", IMAGE)])
    with pytest.raises(ColumnMappingError, match=re.escape("--candidate-input input_layer=image: candidate c.onnx has no input")):
        bind([image("input_layer")], [image("keras_tensor")], schema, per_side={"candidate": {"input_layer": "image"}})


# --- several inputs: by position, where the signatures match ------------------------------


def test_inputs_named_differently_bind_by_position_when_the_signatures_match():
    schema = pa.schema([("input_ids", pa.list_(pa.int64())), ("attention_mask", pa.list_(pa.int64())), ("x", IMAGE)])
    reference = [TensorSpec("input_ids", "int64", (None, None)), TensorSpec("attention_mask", "int64", (None, None))]
    candidate = [TensorSpec("input.1", "int64", (None, None)), TensorSpec("input.2", "int64", (None, None))]
    bound = bind(reference, candidate, schema)
    assert summary(bound)["candidate"] == [
        ("input.1", ("input_ids",), "by position, as reference input 'input_ids'"),
        ("input.2", ("attention_mask",), "by position, as reference input 'attention_mask'"),
    ]
    swapped = [TensorSpec("input.1", "int64", (None, None)), TensorSpec("input.2", "float32", (None, None))]
    with pytest.raises(ColumnMappingError, match="no column feeds input 'input.1'"):
        bind(reference, swapped, schema)


def test_no_position_binding_where_the_inputs_that_bind_by_name_disagree_with_their_positions():
    schema = pa.schema([("ids", pa.list_(pa.int64())), ("mask", pa.list_(pa.int64()))])
    reference = [TensorSpec("ids", "int64", (None, None)), TensorSpec("mask", "int64", (None, None))]
    candidate = [TensorSpec("other", "int64", (None, None)), TensorSpec("ids", "int64", (None, None))]
    with pytest.raises(ColumnMappingError, match="no column feeds input 'other'"):
        bind(reference, candidate, schema)


# --- how a binding is shown ------------------------------------------------------------------


def prepared(name, columns, rule):
    return PreparedInput(name, tuple(columns), rule, ("list<float>",), "float32", (32, 32, 3), False)


def test_inputs_fed_from_the_same_columns_under_other_names_are_shown_side_by_side():
    reference = (prepared("input_layer", ["image"], "the only column that can feed it"),)
    candidate = (prepared("keras_tensor", ["image"], "the only column that can feed it"),)
    assert describe_pairing(reference, candidate) == "image -> input_layer | keras_tensor"
    assert describe_pairing(reference, (prepared("input_layer", ["image"], "by name"),)) is None
    assert describe_binding(candidate[0]).endswith("; the only column that can feed it)")
    assert describe_binding(prepared("image", ["image"], "by name")) == "image <- image (list<float>->float32)"


# --- the options ----------------------------------------------------------------------------


def test_input_options_with_or_without_a_name():
    assert parse_input_options(["image", "mask=m*"]) == {"": "image", "mask": "m*"}
    with pytest.raises(UsageError, match="candidate_inputs is given twice without a NAME") as info:
        parse_input_options(["a", "b"], name="candidate_inputs")
    assert info.value.in_words(cli_flag).startswith("--candidate-input is given twice")


def test_the_api_takes_per_side_inputs_as_options_or_mappings(tmp_path):
    config = CompareConfig.from_options(
        "r.onnx", "c.onnx", "d.parquet", reference_inputs=["input_layer=image"], candidate_inputs={"keras_tensor": "image"}
    )
    assert config.reference.inputs == {"input_layer": "image"} and config.candidate.inputs == {"keras_tensor": "image"}
    with pytest.raises(UsageError, match="expected NAME=COLS or COLS"):
        CompareConfig.from_options("r.onnx", "c.onnx", "d.parquet", candidate_inputs=["x="])


# --- names from the user stay on one line --------------------------------------------------


def test_a_column_name_holding_a_newline_is_escaped_in_errors():
    schema = pa.schema([("im\nage", IMAGE), ("other\r", IMAGE)])
    with pytest.raises(ColumnMappingError) as info:
        bind([image("x")], [image("x")], schema)
    assert "\n" not in info.value.message and "\r" not in info.value.message
    assert "'im\\nage'" in info.value.message
    with pytest.raises(ColumnMappingError) as info:
        bind([image("x")], [image("x")], schema, shared={"x": "zz\nz"})
    assert "\n" not in info.value.message
