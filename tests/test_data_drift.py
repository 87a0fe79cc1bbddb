"""Data drift: the same model on two files (--reference-data / --candidate-data). The
comparisons run on fake backends in virtual time; the command-line cases are error paths
that stop before any model loads, and one real run on the shipped sequence model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from fakes import FakeClock, in_process_factory
from perfgate.config import CompareConfig
from perfgate.errors import ColumnMappingError, UsageError
from perfgate.engine.pipeline import run_comparison
from perfgate.report import render
from perfgate.report.json import dumps, loads
from perfgate.report.summary import DATA_DRIFT
from perfgate.results import Verdict

MODEL = "models/same.fake"


def features(path: Path, rows: int, size: float, seed: int = 0) -> Path:
    """f0 is a row's size (all rows ``size`` and a little): the fake model's cost grows with it."""
    rng = np.random.default_rng(seed)
    columns = {"f0": size + rng.uniform(0, 1, rows), **{f"f{i}": rng.standard_normal(rows) for i in range(1, 4)}}
    pq.write_table(pa.table(columns), path)
    return path


def per_unit_cost(rng, clock, feed):
    return (100_000 + 5_000 * float(feed["x"][:, 0].sum())) * rng.lognormal(0, 0.03)


def drift_run(reference_data: Path, candidate_data: Path, made: dict | None = None, **options):
    clock = FakeClock()
    options.setdefault("time_budget_s", 20.0)
    options.setdefault("cold_starts", 0)
    config = CompareConfig.from_options(
        MODEL, MODEL, reference_data=str(reference_data), candidate_data=str(candidate_data), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", **options,
    )  # fmt: skip
    factory = in_process_factory(clock, {"reference": per_unit_cost, "candidate": per_unit_cost}, made=made)
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def test_longer_inputs_on_the_candidate_side_fail_and_each_model_ran_its_own_rows(tmp_path):
    short = features(tmp_path / "last_month.parquet", 300, size=10)
    long = features(tmp_path / "this_month.parquet", 500, size=60, seed=1)
    made: dict = {}
    report = drift_run(short, long, made=made)

    assert report.verdict is Verdict.FAIL  # ~ (100k + 5k*60) / (100k + 5k*10): 2.7x the latency
    assert all(10 <= value < 11 for value in made["reference"].seen)
    assert all(60 <= value < 61 for value in made["candidate"].seen)
    data = report.data
    assert (data.compares, data.path, data.candidate_path) == ("data", str(short), str(long))
    assert (data.rows_total, data.candidate_rows_total, data.rows_used) == (300, 500, 300)
    assert any("300 rows of each file are used" in warning for warning in report.warnings)
    assert (report.settings.reference_data, report.settings.candidate_data) == (str(short), str(long))
    # different inputs give different answers: the outputs are not compared
    assert report.outputs is None and report.settings.output_rows == 0
    assert not [check for check in report.checks if check.metric.family == "outputs"]


def test_the_same_file_on_both_sides_is_no_drift(tmp_path):
    same = features(tmp_path / "same.parquet", 200, size=10)
    report = drift_run(same, same, time_budget_s=5.0)
    assert report.data.compares == "models" and report.data.candidate_path is None
    assert report.outputs is not None and report.settings.reference_data is None


def test_rows_and_seed_apply_to_each_file(tmp_path):
    short = features(tmp_path / "a.parquet", 300, size=10)
    long = features(tmp_path / "b.parquet", 500, size=10, seed=1)
    made: dict = {}
    report = drift_run(short, long, made=made, rows=100, time_budget_s=5.0)
    assert report.data.rows_used == 100 and not report.warnings
    picked = {side: set(made[side].seen) for side in ("reference", "candidate")}
    rows = {side: set(pq.read_table(path).column("f0").to_numpy().astype(np.float32)) for side, path in (("reference", short), ("candidate", long))}
    for side in picked:
        assert picked[side] <= rows[side] and len(picked[side]) == 100


@pytest.mark.parametrize("fmt", ["text", "markdown", "html", "junit"])
def test_every_renderer_says_the_comparison_is_of_the_data(tmp_path, fmt):
    report = drift_run(features(tmp_path / "a.parquet", 200, size=10), features(tmp_path / "b.parquet", 200, size=60, seed=1))
    rendered = render(report, fmt)
    assert DATA_DRIFT.lower() in rendered.lower()
    assert "a.parquet" in rendered and "b.parquet" in rendered


def test_the_json_report_keeps_both_files_and_says_what_it_compares(tmp_path):
    report = drift_run(features(tmp_path / "a.parquet", 200, size=10), features(tmp_path / "b.parquet", 250, size=60, seed=1))
    text = dumps(report)
    data = json.loads(text)["compared"]["data"]
    assert data["compares"] == "data" and data["candidate_path"].endswith("b.parquet") and data["candidate_rows_total"] == 250
    again = loads(text)
    assert again.data == report.data and again.settings == report.settings
    assert DATA_DRIFT in render(again, "text")


def test_a_report_from_before_data_drift_reads_as_a_comparison_of_models(tmp_path):
    report = drift_run(features(tmp_path / "a.parquet", 200, size=10), features(tmp_path / "a.parquet", 200, size=10), time_budget_s=5.0)
    data = json.loads(dumps(report))
    for key in ("compares", "candidate_path", "candidate_rows_total"):
        del data["compared"]["data"][key]
    data["schema_version"] = 4
    assert loads(json.dumps(data)).data.compares == "models"


def test_options_that_need_the_same_rows_on_both_sides_are_refused(tmp_path):
    a, b = str(features(tmp_path / "a.parquet", 50, size=1)), str(features(tmp_path / "b.parquet", 50, size=2))
    with pytest.raises(UsageError, match="size_column=n lines both models' calls up on the same rows"):
        CompareConfig.from_options(MODEL, MODEL, reference_data=a, candidate_data=b, size_column="n")
    with pytest.raises(UsageError, match="budget outputs.cosine:>=0.99: outputs are compared on the same rows"):
        CompareConfig.from_options(MODEL, MODEL, reference_data=a, candidate_data=b, budgets=["outputs.cosine:>=0.99"])
    with pytest.raises(UsageError, match="no data for the candidate model: pass data=PARQUET or candidate_data=PARQUET"):
        CompareConfig.from_options(MODEL, MODEL, reference_data=a)
    # --data stays the default of a side without its own file
    assert CompareConfig.from_options(MODEL, MODEL, a, candidate_data=b).data_drift


def test_a_file_whose_columns_do_not_fit_the_model_names_the_side_and_its_file(tmp_path):
    fits = features(tmp_path / "fits.parquet", 50, size=1)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"text_length": np.arange(50.0), "label": np.zeros(50)}), other)
    with pytest.raises(ColumnMappingError) as info:
        drift_run(fits, other, time_budget_s=5.0)
    message = str(info.value)
    assert message.startswith(f"candidate {MODEL} (data {other}):") and "no column matches 'f*'" in message


# --- the command line ----------------------------------------------------------------------

SEQ = str(FIXTURES / "seq_linear.onnx")


def test_a_missing_candidate_data_file_is_one_line_and_exit_3(tmp_path):
    data = str(FIXTURES / "sequences.parquet")
    report = tmp_path / "err.json"
    result = run_cli("compare", "-r", SEQ, "-c", SEQ, "--reference-data", data, "--candidate-data", "absent.parquet",
                     "-q", "--json", str(report))  # fmt: skip
    assert_one_line_error(result, 3, "cannot read data 'absent.parquet': no such file")
    assert json.loads(report.read_text())["verdict"] == "error"


def test_no_data_at_all_is_a_usage_error():
    result = run_cli("compare", "-r", SEQ, "-c", SEQ, "--candidate-data", str(FIXTURES / "sequences.parquet"), "-q")
    assert_one_line_error(result, 2, "no data for the reference model: pass --data PARQUET or --reference-data PARQUET")


@pytest.mark.e2e
def test_longer_sequences_cost_more_on_the_same_model(tmp_path):
    """The shipped sequence model, padded per batch: ten times longer token lists fail the gate."""
    table = pq.read_table(FIXTURES / "sequences.parquet")
    short = table.set_column(1, "tokens", pa.array([row[:4] for row in table.column("tokens").to_pylist()]))
    long = table.set_column(1, "tokens", pa.array([(row * 40)[:400] for row in table.column("tokens").to_pylist()]))
    pq.write_table(short, tmp_path / "short.parquet")
    pq.write_table(long, tmp_path / "long.parquet")
    report = tmp_path / "drift.json"
    result = run_cli(
        "compare", "-r", SEQ, "-c", SEQ, "--reference-data", str(tmp_path / "short.parquet"),
        "--candidate-data", str(tmp_path / "long.parquet"), "--rows", "200", "--time-budget", "30",
        "--cold-starts", "0", "-q", "--json", str(report),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert DATA_DRIFT in result.stdout
    data = json.loads(report.read_text())
    assert data["compared"]["data"]["compares"] == "data" and data["outputs"] is None
