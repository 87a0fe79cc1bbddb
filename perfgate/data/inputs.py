"""Which Parquet columns feed which model input, and by which rule.

Each input of each model is fed by the first of these rules that applies:

1. ``--reference-input NAME=COLS`` (``--candidate-input``) for that model's input NAME,
   then ``--input NAME=COLS`` for either model's. COLS is a comma list of column names
   or globs (``f*``, ``f0[0-9]``), taken in file order within each glob;
2. ``--reference-input COLS`` (``--candidate-input COLS``), then ``--input COLS``: the
   model's only input, whatever it is called;
3. the column with the input's name;
4. by position: where both models take as many inputs with the same signatures (dtype
   kind, rank, known dims), and the inputs bound so far agree position by position, an
   input takes the columns of the other model's input at its position;
5. a model with one input takes the one column that could feed it, once ids, labels,
   targets, the pandas index and the size column are set aside.

Rules 4 and 5 exist because exports name inputs as they please: a Keras model and the
same model saved again say ``keras_tensor`` and ``keras_tensor_5``, its TFLite conversion
``serving_default_input_1:0``. The tensors made from the columns are ``perfgate.data.batches``'s.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import pyarrow as pa

from perfgate.errors import ColumnMappingError, UsageError, option
from perfgate.results import PreparedInput
from perfgate.tensors import TensorSpec

ANY_INPUT = ""  # the key of an option without NAME=: it feeds a model's only input
BY_NAME = "by name"
ONLY_COLUMN = "the only column that can feed it"
# columns that never feed an input unless an option names them
SET_ASIDE = frozenset({"id", "idx", "index", "label", "labels", "target", "targets", "y"})
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


@dataclass(frozen=True)
class InputBinding:
    """The columns that feed one model input, and the rule that chose them."""

    input: str
    columns: tuple[str, ...]
    rule: str  # "by name", "--input NAME=COLS", "by position, as reference input 'x'", …


def input_options(value: Mapping[str, str] | Iterable[str] | str, name: str = "inputs") -> dict[str, str]:
    """The API's form of an input option (a mapping, or the command line's strings) as a mapping."""
    if isinstance(value, Mapping):
        return {str(key): str(columns) for key, columns in value.items()}
    return parse_input_options([value] if isinstance(value, str) else value, name)


def parse_input_options(options: Iterable[str], name: str = "inputs") -> dict[str, str]:
    """``['X=f*', 'mask=m', 'image']`` -> ``{'X': 'f*', 'mask': 'm', '': 'image'}``; ``name``
    is the option's API keyword (``inputs``, ``reference_inputs``) for the messages."""
    parsed: dict[str, str] = {}
    for item in options:
        key, sep, columns = str(item).partition("=")
        if not sep:
            key, columns = ANY_INPUT, key
        key, columns = key.strip(), columns.strip()
        if (sep and not key) or not columns:
            raise UsageError(
                f"{option(name, repr(item))}: expected NAME=COLS or COLS, "
                f"e.g. {option(name, repr('features=f*'))} or {option(name, 'image')}"
            )
        if key in parsed:
            if key == ANY_INPUT:
                raise UsageError(f"{option(name)} is given twice without a NAME (once feeds a model's only input)")
            raise UsageError(f"{option(name)} {shown(key)} is given twice")
        parsed[key] = columns
    return parsed


def bind_inputs(
    models: Mapping[str, Sequence[TensorSpec]],
    schema: pa.Schema,
    shared: Mapping[str, str],
    per_side: Mapping[str, Mapping[str, str]],
    *,
    labels: Mapping[str, str] | None = None,
    set_aside: Iterable[str] = (),
) -> dict[str, tuple[InputBinding, ...]]:
    """The columns for each input of each model (``models``: side -> its inputs; at most
    two sides, ``reference`` and ``candidate``), by the rules in this module's docstring.
    ``shared`` holds ``--input`` and ``per_side`` each side's ``--SIDE-input`` options."""
    labels = labels or {side: side for side in models}
    for side, specs in models.items():
        if not specs:
            raise ColumnMappingError(f"{labels[side]}: the model declares no inputs, so no rows can feed it")
    _check_option_names(models, shared, per_side, labels)
    stated = {side: _stated(side, specs, schema, shared, per_side.get(side, {})) for side, specs in models.items()}
    aside = set(set_aside)
    bound: dict[str, tuple[InputBinding, ...]] = {}
    for side, specs in models.items():
        found = list(stated[side])
        other = next((name for name in models if name != side), None)
        if other is not None and None in found:
            found = _by_position(specs, found, other, models[other], stated[other])
        if len(specs) == 1 and found[0] is None:
            found[0] = _only_column(specs[0], schema, aside, side, labels[side], several_models=other is not None)
        for spec, binding in zip(specs, found):
            if binding is None:
                raise _unbound(spec, side, labels[side], models, schema)
        bound[side] = tuple(binding for binding in found if binding is not None)
    return bound


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


def could_feed(field: pa.Field, spec: TensorSpec) -> bool:
    """Whether ``field`` alone has the type and per-row size to feed ``spec``."""
    kind = _kind(field.type)
    if kind is None:
        return False
    if spec.shape is None:
        return True
    row = spec.shape[1:]
    if not spec.shape or (kind != "scalar" and not row):
        return False
    if kind == "scalar":
        return all(dim == 1 for dim in row)
    if kind == "fixed_list":
        return None in row or math.prod(row) == _fixed_width(field.type)
    return True  # a variable-length list is padded, or reshaped where its rows agree


def describe_binding(prepared: PreparedInput) -> str:
    """``features <- f00..f15 (16 columns, double->float32)``; a rule the user did not
    write is named: ``keras_tensor <- image (list<float>->float32; the only column that can feed it)``."""
    columns = prepared.columns
    types = sorted(set(prepared.column_types))
    facts = [f"{shown('/'.join(types))}->{prepared.dtype}"]
    if len(columns) > 1:
        facts.insert(0, f"{len(columns)} columns")
    if prepared.padded:
        facts.append("padded per batch")
    implicit = "" if prepared.rule == BY_NAME or prepared.rule.startswith("--") else f"; {prepared.rule}"
    return f"{shown(prepared.input)} <- {_columns_short(columns)} ({', '.join(facts)}{implicit})"


def describe_pairing(reference: Sequence[PreparedInput], candidate: Sequence[PreparedInput]) -> str | None:
    """``image -> input_layer | keras_tensor``: the columns that feed an input of each model
    where the two name it differently; None where every pair shares its name."""
    pairs = [
        f"{_columns_short(ours.columns)} -> {shown(ours.input)} | {shown(theirs.input)}"
        for ours in reference
        for theirs in candidate
        if ours.columns == theirs.columns and ours.input != theirs.input
    ]
    return "; ".join(pairs) or None


def shown(text: str) -> str:
    """``text`` as it is where it prints on one line, else escaped as Python writes it:
    names come from users' files and models, and an error message stays one line."""
    return text if text.isprintable() else repr(text)


def _check_option_names(
    models: Mapping[str, Sequence[TensorSpec]],
    shared: Mapping[str, str],
    per_side: Mapping[str, Mapping[str, str]],
    labels: Mapping[str, str],
) -> None:
    """Every option's NAME is an input of its model(s), and an option without a NAME
    goes to models of one input."""
    for name, columns in shared.items():
        if name == ANY_INPUT:
            for side, specs in models.items():
                _check_only_input(specs, f"--input {shown(columns)}", labels[side])
        elif all(name not in {spec.name for spec in specs} for specs in models.values()):
            listing = "; ".join(f"{side}: {_names(specs)}" for side, specs in models.items())
            raise ColumnMappingError(f"--input {shown(name)}: no model has an input called {name!r} ({listing})")
    for side, options in per_side.items():
        specs = models[side]
        for name, columns in options.items():
            if name == ANY_INPUT:
                _check_only_input(specs, f"--{side}-input {shown(columns)}", labels[side])
            elif name not in {spec.name for spec in specs}:
                raise ColumnMappingError(
                    f"--{side}-input {shown(name)}={shown(columns)}: {labels[side]} has no input called {name!r} "
                    f"(its inputs: {_names(specs)})"
                )


def _check_only_input(specs: Sequence[TensorSpec], flag: str, label: str) -> None:
    if len(specs) != 1:
        raise ColumnMappingError(
            f"{flag} names no input, but {label} has {len(specs)} ({_names(specs)}): write NAME=COLS for each"
        )


def _stated(
    side: str, specs: Sequence[TensorSpec], schema: pa.Schema, shared: Mapping[str, str], own: Mapping[str, str]
) -> list[InputBinding | None]:
    """Rules 1 to 3: the options, then the column of the input's name; None for the rest."""
    found: list[InputBinding | None] = []
    for spec in specs:
        name = shown(spec.name)
        if spec.name in own:
            rule = f"--{side}-input {name}={shown(own[spec.name])}"
            found.append(InputBinding(spec.name, expand_columns(own[spec.name], schema.names, option=rule), rule))
        elif spec.name in shared:
            rule = f"--input {name}={shown(shared[spec.name])}"
            found.append(InputBinding(spec.name, expand_columns(shared[spec.name], schema.names, option=rule), rule))
        elif ANY_INPUT in own or ANY_INPUT in shared:
            pattern, flag = (own[ANY_INPUT], f"--{side}-input") if ANY_INPUT in own else (shared[ANY_INPUT], "--input")
            rule = f"{flag} {shown(pattern)}"
            found.append(InputBinding(spec.name, expand_columns(pattern, schema.names, option=rule), rule))
        elif spec.name in schema.names:
            found.append(InputBinding(spec.name, (spec.name,), BY_NAME))
        else:
            found.append(None)
    return found


def _by_position(
    specs: Sequence[TensorSpec],
    found: list[InputBinding | None],
    other: str,
    other_specs: Sequence[TensorSpec],
    other_stated: Sequence[InputBinding | None],
) -> list[InputBinding | None]:
    """Rule 4: the other model's columns at the same positions, where the signatures match
    and the inputs bound so far sit at the same positions in both models."""
    if len(specs) != len(other_specs) or not all(a.same_signature(b) for a, b in zip(specs, other_specs)):
        return found
    if any(ours is not None and theirs is not None and ours.columns != theirs.columns for ours, theirs in zip(found, other_stated)):
        return found
    return [
        ours if ours is not None or theirs is None
        else InputBinding(spec.name, theirs.columns, f"by position, as {other} input {theirs.input!r}")
        for spec, ours, theirs in zip(specs, found, other_stated)
    ]  # fmt: skip


def _only_column(
    spec: TensorSpec, schema: pa.Schema, aside: set[str], side: str, label: str, *, several_models: bool
) -> InputBinding | None:
    """Rule 5, for a model of one input."""
    fits = [field.name for field in schema if not _is_set_aside(field.name, aside) and could_feed(field, spec)]
    if len(fits) == 1:
        return InputBinding(spec.name, (fits[0],), ONLY_COLUMN)
    if len(fits) > 1:
        own = f" or --{side}-input {shown(spec.name)}=COLS" if several_models else ""
        raise ColumnMappingError(
            f"{label}: no column is named like input {spec.name!r}, and {len(fits)} columns could feed it "
            f"({_column_listing(fits)}); choose with --input COLS{own}"
        )
    return None


def _unbound(
    spec: TensorSpec, side: str, label: str, models: Mapping[str, Sequence[TensorSpec]], schema: pa.Schema
) -> ColumnMappingError:
    everywhere = all(spec.name in {s.name for s in specs} for specs in models.values())
    flag = "--input" if everywhere else f"--{side}-input"
    return ColumnMappingError(
        f"{label}: no column feeds input {spec.name!r}; name a column {spec.name!r} or pass "
        f"{flag} {shown(spec.name)}=COLS (columns: {_column_listing(schema.names)})"
    )


def _is_set_aside(name: str, aside: set[str]) -> bool:
    return name in aside or name.lower() in SET_ASIDE or _PANDAS_INDEX.fullmatch(name) is not None


def type_name(kind: pa.DataType) -> str:
    """'double', 'list<int64>', 'fixed_size_list<float>[768]' (Arrow's own names, shorter)."""
    if pa.types.is_fixed_size_list(kind):
        return f"fixed_size_list<{type_name(kind.value_type)}>[{kind.list_size}]"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{type_name(kind.value_type)}>"
    return str(kind)


def column_kind(field: pa.Field, spec: TensorSpec, model: str) -> str:
    """"scalar", "fixed_list" or "list"; a column of another type cannot feed an input."""
    kind = _kind(field.type)
    if kind is None:
        raise ColumnMappingError(
            f"{model}: column {field.name!r} has type {shown(str(field.type))}, which cannot feed input {spec.name!r} "
            f"(numbers, bools, and lists of them can)"
        )
    return kind


def _kind(kind: pa.DataType) -> str | None:
    if _is_number(kind):
        return "scalar"
    if pa.types.is_fixed_size_list(kind) and _fixed_list_leaf_is_number(kind):
        return "fixed_list"
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
        _is_number(kind.value_type)
        or (pa.types.is_fixed_size_list(kind.value_type) and _fixed_list_leaf_is_number(kind.value_type))
    ):
        return "list"
    return None


def _fixed_width(kind: pa.DataType) -> int:
    """The number of values in one (nested) fixed-size list."""
    width = 1
    while pa.types.is_fixed_size_list(kind):
        width *= kind.list_size
        kind = kind.value_type
    return width


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _fixed_list_leaf_is_number(kind: pa.DataType) -> bool:
    while pa.types.is_fixed_size_list(kind):
        kind = kind.value_type
    return _is_number(kind)


def _column_listing(names: Sequence[str], limit: int = 12) -> str:
    listed = ", ".join(shown(name) for name in names[:limit])
    return listed + (f", … {len(names) - limit} more" if len(names) > limit else "")


def _columns_short(columns: Sequence[str]) -> str:
    return shown(columns[0]) if len(columns) == 1 else f"{shown(columns[0])}..{shown(columns[-1])}"


def _names(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(shown(spec.name) for spec in specs)
