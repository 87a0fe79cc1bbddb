"""`perfgate report` given another JSON file perfgate writes: one line that says which file
it is and how to read it, exit 3 as for any file that is not a report, no traceback."""

import json

import pytest

from conftest import assert_one_line_error, run_cli
from perfgate.errors import DataError
from perfgate.report.json import read_report
from perfgate.results import SCHEMA_VERSION

COMPARISON = {"schema_version": SCHEMA_VERSION, "verdict": "fail", "checks": []}


def session(*records: dict) -> dict:
    """The shape the pytest plugin's --perfgate-json writes."""
    return {"schema_version": SCHEMA_VERSION, "kind": "pytest-session", "tool": {"name": "perfgate"}, "created": "",
            "settings": {}, "environment": {}, "measurements": list(records)}  # fmt: skip


MEASURED = {"test": "t.py::test_a", "kind": "measure", "verdict": "pass", "checks": [], "measurement": {}}
COMPARED = {"test": "t.py::test_b", "kind": "compare", "verdict": "fail", "report": COMPARISON}


@pytest.mark.parametrize(
    "document, fragment",
    [
        (session(MEASURED, COMPARED),
         "it is the pytest plugin's --perfgate-json record of 2 measurements (1 comparison), not a comparison report; "
         "each comparison's report is its measurement's \"report\", which perfgate report reads once saved on its own: "
         "jq '.measurements[1].report' "),
        (session(COMPARED, MEASURED, COMPARED), "it is the pytest plugin's --perfgate-json record of 3 measurements (2 comparisons)"),
        (session(MEASURED), "it is the pytest plugin's --perfgate-json record of 1 measurement (no comparison), not a "
                            "comparison report; read it as JSON"),
        (session(), "it is the pytest plugin's --perfgate-json record of 0 measurements (no comparison)"),
        ({"kind": "perfgate-baseline", "schema_version": 1, "model": {}, "measured": []},
         "it is a stored baseline (perfgate run --save), not a comparison report; compare a model against it with "
         "perfgate compare --candidate MODEL --baseline "),
        ({"schema_version": 1, "model": "m.onnx", "data": "d.parquet", "time_budget_s": 5.0, "measure_seconds": 4.9,
          "confidence": 0.95, "checks": [], "not_estimated": []},
         "it is perfgate calibrate's JSON (a model's noise and detectable change), not a comparison report"),
    ],
)  # fmt: skip
def test_another_file_perfgate_writes_is_named_with_how_to_read_it(tmp_path, document, fragment):
    path = tmp_path / "given.json"
    path.write_text(json.dumps(document))
    result = run_cli("report", str(path))
    assert_one_line_error(result, 3, f"cannot read report '{path}': {fragment}")
    assert "KeyError" not in result.stderr and "schema_version" not in result.stderr


def test_the_jq_line_reads_the_comparison_s_report_out_of_a_session_file(tmp_path):
    path = tmp_path / "session with spaces.json"
    path.write_text(json.dumps(session(MEASURED, COMPARED)))
    with pytest.raises(DataError) as raised:
        read_report(path)
    assert raised.value.message.endswith(f"jq '.measurements[1].report' '{path}' > report.json")


@pytest.mark.parametrize(
    "document, fragment",
    [
        ({"kind": "something-else", "schema_version": SCHEMA_VERSION}, "not a perfgate report (KeyError: 'verdict')"),
        ([1, 2], "not a perfgate report"),
        ({"schema_version": 99}, "report schema_version 99 is not one this perfgate reads"),
    ],
)
def test_any_other_json_is_still_not_a_report(tmp_path, document, fragment):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(document))
    assert_one_line_error(run_cli("report", str(path)), 3, fragment)
