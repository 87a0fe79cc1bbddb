"""A time budget out of range is a usage error in one line, never an internal one: it
must be a finite number of seconds above 0 and at most a week, on every face."""

import math

import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from perfgate.engine.calibration import calibrate
from perfgate.config import CompareConfig
from perfgate.errors import UsageError
from perfgate.engine.single import measure

MODEL = str(FIXTURES / "mlp_reference.onnx")
DATA = str(FIXTURES / "features.parquet")
WEEK = 7 * 24 * 3600.0
FACES = {
    "compare": ("compare", "-r", MODEL, "-c", MODEL, "-d", DATA, "--input", "features=f*"),
    "run": ("run", "--model", MODEL, "-d", DATA, "--input", "features=f*"),
    "calibrate": ("calibrate", "--model", MODEL, "-d", DATA, "--input", "features=f*"),
}
OUT_OF_RANGE = [
    (math.inf, "must be a positive number of seconds"),
    (math.nan, "must be a positive number of seconds"),
    (-1.0, "must be a positive number of seconds"),
    (0.0, "must be a positive number of seconds"),
    (1e308, "must be at most 604800 seconds (a week)"),
    (WEEK * 1.01, "must be at most 604800 seconds (a week)"),
]


@pytest.mark.parametrize("value, fragment", OUT_OF_RANGE, ids=lambda v: str(v)[:12])
def test_every_api_takes_a_finite_time_budget_of_at_most_a_week(value, fragment):
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        CompareConfig.from_options(MODEL, MODEL, DATA, time_budget_s=value)
    with pytest.raises(UsageError, match="time_budget_s " + fragment.replace("(", r"\(").replace(")", r"\)")):
        measure(MODEL, DATA, inputs=["features=f*"], time_budget_s=value)
    with pytest.raises(UsageError, match="time_budget_s"):
        calibrate(MODEL, DATA, inputs=["features=f*"], time_budget_s=value)


def test_a_week_is_a_time_budget():
    assert CompareConfig.from_options(MODEL, MODEL, DATA, time_budget_s=WEEK).measuring.time_budget_s == WEEK


@pytest.mark.parametrize("face", sorted(FACES))
@pytest.mark.parametrize("value, fragment", [("1e308", "at most 604800 seconds (a week), got 1e+308"),
                                             ("inf", "a positive number of seconds, got inf"),
                                             ("nan", "a positive number of seconds, got nan")])  # fmt: skip
def test_every_command_refuses_a_time_budget_out_of_range_as_a_usage_error(face, value, fragment):
    result = run_cli(*FACES[face], "--time-budget", value)
    assert_one_line_error(result, 2, f"--time-budget must be {fragment}")
