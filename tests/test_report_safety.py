"""What a report may hold that its formats cannot carry as such (NaN, infinity, a name
with a newline or a terminal escape), which model a directory names, and the values
CompareConfig refuses before anything loads; on fake backends in virtual time."""

import json
import math
import os
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES
from fakes import FakeClock, in_process_factory, lognormal
from perfgate.backends import model_file
from perfgate.config import CompareConfig
from perfgate.errors import UsageError
from perfgate.engine.pipeline import run_comparison
from perfgate.report.json import dumps, loads
from perfgate.report.text import printable, render_text


def fake_run(data, *, inputs=None, **options):
    clock = FakeClock()
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data), inputs=inputs or {"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend",
        time_budget_s=10.0, cold_starts=0, **options,
    )  # fmt: skip
    factory = in_process_factory(clock, {"reference": lognormal(1e6), "candidate": lognormal(1e6)})
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def strict(text):
    def refuse(name):
        raise ValueError(f"non-standard JSON: {name}")

    return json.loads(text, parse_constant=refuse)


# --- NaN and infinity ------------------------------------------------------------------------


def test_non_finite_numbers_are_written_as_strings_and_read_back_as_floats(feature_table_path):
    report = fake_run(feature_table_path, pad_value=math.nan, allow_nonfinite=True)
    check = replace(report.checks[0], ratio=math.inf, ci=(-math.inf, math.nan))
    report = replace(report, checks=(check, *report.checks[1:]))

    data = strict(dumps(report))
    assert data["settings"]["pad_value"] == "NaN"
    assert data["checks"][0]["ratio"] == "Infinity" and data["checks"][0]["ci"] == ["-Infinity", "NaN"]
    assert data["checks"][0]["change"] == "Infinity"

    again = loads(dumps(report))
    assert math.isnan(again.settings.pad_value)
    assert again.checks[0].ratio == math.inf
    assert again.checks[0].ci[0] == -math.inf and math.isnan(again.checks[0].ci[1])
    assert again.checks[1:] == report.checks[1:]


def test_a_string_that_spells_nan_stays_a_string_where_the_report_holds_text(tmp_path):
    path = tmp_path / "NaN"  # a data file and columns called NaN or Infinity
    names = ["NaN", "Infinity", "-Infinity", "f"]
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({name: rng.standard_normal(50) for name in names}), path)
    report = fake_run(path, inputs={"x": ",".join(names)})
    again = loads(dumps(report))
    assert again.data.path == str(path)
    assert again.settings.inputs == {"x": "NaN,Infinity,-Infinity,f"}
    assert again.candidate.inputs[0].columns == tuple(names)


# --- names that would break the terminal report --------------------------------------------


def test_names_from_the_user_cannot_break_lines_or_steer_the_terminal(tmp_path):
    hostile = "f\n\x1b]0;pwned\x07\x1b[2J"
    path = tmp_path / "rows\r\n\u202e.parquet"
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({f"{hostile}{i}": rng.standard_normal(50) for i in range(4)}), path)
    report = fake_run(path, inputs={"x": "f*"})
    report = replace(report, warnings=("a warning about 'col\nFAIL: forged'",))

    text = render_text(report)
    assert all(printable(line) == line for line in text.splitlines())
    assert "\nFAIL: forged" not in text and "'col\\nFAIL: forged'" in text
    assert "rows\\r\\n\\u202e.parquet" in text
    assert "f\\n\\x1b]0;pwned\\x07\\x1b[2J0" in text
    assert len(text.splitlines()) == len(render_text(replace(report, warnings=("w",))).splitlines())


@pytest.mark.parametrize("fmt", ["text", "markdown", "html", "junit"])
def test_a_file_name_that_is_not_text_shows_its_bytes_in_every_format(tmp_path, fmt):
    """A Latin-1 data file name (bytes Python holds as lone surrogates, PEP 383): the text
    report once showed it as ``donn\\udce9es``, Markdown as a replacement character; every
    format writes the byte as the JSON report does, ``\\xe9``."""
    import html

    from perfgate.report import render

    report = fake_run(_table(tmp_path, b"donn\xe9es.parquet"))
    shown = html.unescape(render(report, fmt))  # as a reader sees Markdown, HTML and XML
    assert "donn\\xe9es.parquet" in shown, shown[:2000]
    assert "\udce9" not in shown and "\\udce9" not in shown and "\ufffd" not in shown


def _table(folder, name: bytes):
    path = os.path.join(os.fsencode(folder), name)
    rng = np.random.default_rng(0)
    with open(path, "wb") as file:
        pq.write_table(pa.table({f"f{i}": rng.standard_normal(50) for i in range(4)}), file)
    return os.fsdecode(path)


def test_printable_leaves_ordinary_text_alone():
    for text in ("plain", "tab-free é 日本 ½ 👍🏽", "C:\\models\\a.onnx", "quote ' \" ok"):
        assert printable(text) == text
    assert printable("a\tb\x7f\x9b") == "a\\tb\\x7f\\x9b"


# --- which model a directory names -----------------------------------------------------------


def test_a_directory_with_one_model_file_names_that_file(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / ".model.onnx.swp").write_bytes(b"")
    assert model_file(str(tmp_path)) == str(tmp_path / "model.onnx")
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(UsageError, match=r"holds 2 models \(model.onnx, model.pt\)"):
        model_file(str(tmp_path))
    assert model_file(str(tmp_path), "torch") == str(tmp_path / "model.pt")
    with pytest.raises(UsageError, match=r"with no tflite model file \(.tflite\)"):
        model_file(str(tmp_path), "tflite")
    assert model_file(str(tmp_path), "mypackage.backends:MyBackend") == str(tmp_path)  # its own backend decides


def test_a_savedmodel_stays_a_directory_and_can_sit_inside_one(tmp_path):
    saved = str(FIXTURES / "tensorflow" / "mlp_reference.savedmodel")
    assert model_file(saved) == saved
    assert model_file(saved, "tensorflow") == saved
    export = tmp_path / "export"
    export.mkdir()
    (export / "saved_model").mkdir()
    (export / "saved_model" / "saved_model.pb").write_bytes(b"")
    (export / "config.json").write_text("{}")
    assert model_file(str(export)) == str(export / "saved_model")
    assert model_file(str(tmp_path / "model.onnx")) == str(tmp_path / "model.onnx")  # a file, there or not


# --- values refused before anything loads ----------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(seed=-1), "seed must be a whole number of 0 or more, got -1"),
        (dict(seed=1.5), "seed must be a whole number"),
        (dict(rates=(1e-9,)), "rates=1e-09 is too slow for time_budget_s=60: a load episode of 20 requests"),
        (dict(rates=(100.0, 0.5), time_budget_s=60.0), "rates=0.5 is too slow"),
    ],
)
def test_seed_and_rate_are_checked_in_the_config(options, message):
    with pytest.raises(UsageError, match=message):
        CompareConfig.from_options("a.onnx", "b.onnx", "d.parquet", **options)
    assert CompareConfig.from_options("a.onnx", "b.onnx", "d.parquet", rates=(1.0,), time_budget_s=40.0).measuring.rates == (1.0,)


def test_more_threads_than_usable_cpus_is_a_warning_in_the_report(feature_table_path):
    import os

    usable = len(os.sched_getaffinity(0))
    report = fake_run(feature_table_path, threads=usable + 1)
    assert f"{usable + 1} threads per model, but this process may use only {usable} CPU(s)" in report.warnings[0]
    assert not any("threads per model" in warning for warning in fake_run(feature_table_path, threads=usable).warnings)
