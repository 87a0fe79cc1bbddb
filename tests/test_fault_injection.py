"""The fast cases of benchmarks/fault_injection.py, one test each: every class of fault of
issue 17 (data loss, broken input that passes, crashes that exit 1, load, hangs and
signals, valid runs, trips), each case judged as the script judges it.

The slow cases (a minute of measuring, torch or TensorFlow workers, signals while
measuring) stay in the script: `python benchmarks/fault_injection.py` runs them all.
"""

import pytest

from conftest import ROOT, load_script

faults = load_script(ROOT / "benchmarks" / "fault_injection.py")

pytestmark = pytest.mark.e2e

FAST = faults.selected(fast=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The A/A report and the baseline the cases tamper with, made once for the module."""
    return faults.Cache(tmp_path_factory.mktemp("fault-cache"))


@pytest.mark.parametrize("case", FAST, ids=[f"class{case.cls}-{case.name}" for case in FAST])
def test_fault(case, cache, tmp_path):
    verdict, what, _ = faults.run_case(case, cache, tmp_path)
    if verdict == "SKIP":
        pytest.skip(what)
    assert verdict == "PASS", f"class {case.cls}, {case.name}: {what}"
