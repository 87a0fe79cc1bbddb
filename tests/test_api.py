import subprocess
import sys

import perfgate
from conftest import ROOT
from perfgate.configfile import tomllib

EXPORTED = [
    "BackendUnavailableError", "Budget", "BudgetError", "Check", "ColumnMappingError", "CompareConfig",
    "DataError", "Family", "GenerationResult", "InputCastError", "MeasureResult", "Metric", "ModelLoadError", "PerfgateError",
    "PerfgateRuntimeError", "Report", "UsageError", "Verdict", "WorkerError", "__version__", "build_budgets", "calibrate", "compare",
    "error_report", "judge_again", "measure", "parse_budget", "read_report", "register_family", "run_comparison",
]  # fmt: skip


def test_the_public_api_is_pinned():
    assert sorted(perfgate.__all__) == sorted(EXPORTED)
    for name in EXPORTED:
        assert getattr(perfgate, name) is not None


def test_importing_perfgate_and_its_engine_imports_no_ml_framework():
    code = (
        "import sys, perfgate, perfgate.engine.pipeline, perfgate.cli, perfgate.engine.single, perfgate.integrations.pytest_plugin; "
        "perfgate.compare; perfgate.measure; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('onnxruntime', 'torch', 'tensorflow', 'keras', 'jax')); print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_the_version_matches_the_package_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"]  # perfgate.__version__, read by the build (tests/test_distribution.py)
    assert set(project["optional-dependencies"]) >= {"onnx", "torch", "tensorflow", "all", "test"}
    assert project["scripts"]["perfgate"] == "perfgate.cli:main"


def test_the_api_s_calibrate_stays_a_function_once_its_module_is_imported():
    """perfgate.calibrate() was shadowed by the module of the same name as soon as anything
    imported it (the CLI does): then it was a module, and calling it a TypeError."""
    import perfgate
    import perfgate.engine.calibration  # noqa: F401
    import perfgate.cli.calibrate  # noqa: F401

    assert callable(perfgate.calibrate) and perfgate.calibrate.__module__ == "perfgate.engine.calibration"
