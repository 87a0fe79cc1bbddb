"""Stored baselines: perfgate run --save, then compare --candidate C --baseline PATH, on fake
backends in virtual time (and end to end only with the ~11x slower fixture). A different
environment is refused, listing what differs, unless --allow-env-mismatch; other rows, a
damaged file or another schema version are clear errors."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from fakes import FakeClock, in_process_factory, lognormal
from perfgate.engine.baseline import BASELINE_SCHEMA_VERSION, read_baseline, write_baseline
from perfgate.engine.baseline_compare import compare_with_baseline, measure_baseline, unpaired_interval
from perfgate.errors import DataError, UsageError
from perfgate.report import FORMATS, render
from perfgate.results import Verdict

US = 1e3


def fake(latency, **options):
    """The options that measure a fake model in virtual time."""
    clock = FakeClock()
    return dict(inputs=["x=f*"], backend="fakes:FakeBackend", time_budget_s=30.0,
                worker_factory=in_process_factory(clock, {"model": latency}), clock=clock.seconds, **options)  # fmt: skip


@pytest.fixture
def stored(tmp_path, feature_table_path):
    """A baseline of a 100 us model, saved and read back."""
    path = tmp_path / "baseline.json"
    write_baseline(measure_baseline("model.fake", str(feature_table_path), **fake(lognormal(100 * US))), path)
    return path


def test_a_baseline_stores_samples_data_hash_and_fingerprint_with_its_schema_version(stored, feature_table_path):
    data = json.loads(stored.read_text())
    assert data["kind"] == "perfgate-baseline" and data["schema_version"] == BASELINE_SCHEMA_VERSION
    assert set(data["fingerprint"]) >= {"cpu", "cpus", "gpu", "gpu driver", "os", "python", "framework", "threads", "device"}
    assert len(data["data"]["sha256"]) == 64 and data["data"]["rows_used"] == 200
    baseline = read_baseline(stored)
    (batch,) = baseline.measured
    assert batch.batch_size == 1 and len(batch.blocks) >= 20 and sum(len(b) for b in batch.blocks) >= 459


def test_the_same_model_passes_and_a_3x_slower_one_fails_against_the_baseline(stored, feature_table_path):
    same = compare_with_baseline(str(stored), "model.fake", **fake(lognormal(100 * US), seed=0))
    assert same.verdict is Verdict.PASS, same.reason
    slower = compare_with_baseline(str(stored), "model.fake", **fake(lognormal(300 * US)))
    assert slower.verdict is Verdict.FAIL and slower.reason.startswith("latency.p")
    (p95,) = [c for c in slower.checks if c.metric == "latency.p95"]
    assert p95.verdict is Verdict.FAIL and 2.5 < p95.ratio < 3.5 and p95.ci[0] > 1.15
    assert any("weaker evidence than a same-run comparison" in warning for warning in slower.warnings)
    for fmt in FORMATS:  # every renderer renders it, and says it is weaker
        text = render(slower, fmt)
        if fmt in ("text", "markdown", "junit", "html", "json"):
            assert "weaker evidence than a same-run comparison" in text, fmt


def test_a_different_environment_is_refused_listing_what_differs_and_allowed_on_request(stored):
    data = json.loads(stored.read_text())
    data["fingerprint"].update(cpu="Some Other CPU", threads="4")
    stored.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"the environment differs from the baseline's: cpu 'Some Other CPU' \(baseline\) vs "
                                         r".*; threads '4' \(baseline\) vs '1' \(now\) \(pass allow_env_mismatch"):  # fmt: skip
        compare_with_baseline(str(stored), "model.fake", **fake(lognormal(100 * US)))
    allowed = compare_with_baseline(str(stored), "model.fake", allow_env_mismatch=True, **fake(lognormal(100 * US)))
    assert allowed.verdict is Verdict.PASS
    assert any(w.startswith("the environment differs from the baseline's (cpu 'Some Other CPU'") for w in allowed.warnings)


def test_other_rows_are_refused(stored, tmp_path):
    with pytest.raises(UsageError, match=r"data .*: its 50 rows \(rows 50, seed 0\) are not the baseline's 200 \(all rows of"):
        compare_with_baseline(str(stored), "model.fake", rows=50, **fake(lognormal(100 * US)))


def edited_copy(source, target):
    """``source``'s Parquet file with one value changed: the same rows and columns."""
    table = pq.read_table(source)
    name = next(field.name for field in table.schema if pa.types.is_floating(field.type))
    column = table.column(name).to_numpy().copy()
    column[:] += 1.0  # every row: whichever rows a seed draws, one of them changed
    pq.write_table(table.set_column(table.schema.get_field_index(name), name, pa.array(column)), target)
    return target


@pytest.mark.parametrize("choice", [{}, {"rows": 50, "seed": 3}], ids=["all rows", "50 rows"])
def test_the_same_rows_of_an_edited_file_are_said_to_differ_in_content_not_in_settings(tmp_path, feature_table_path, choice):
    saved = tmp_path / "baseline.json"
    write_baseline(measure_baseline("model.fake", str(feature_table_path), **choice, **fake(lognormal(100 * US))), saved)
    edited = edited_copy(feature_table_path, tmp_path / "edited.parquet")
    with pytest.raises(UsageError) as raised:
        compare_with_baseline(str(saved), "model.fake", str(edited), **choice, **fake(lognormal(100 * US)))
    message = str(raised.value)
    assert "the data's content differs from the baseline's (SHA-256 " in message and " now, " in message
    assert "are not the baseline's" not in message and "None" not in message
    other_seed = dict(choice, seed=4) if choice else {"rows": 50}
    with pytest.raises(UsageError, match="are not the baseline's"):
        compare_with_baseline(str(saved), "model.fake", str(edited), **other_seed, **fake(lognormal(100 * US)))


def test_compare_baseline_on_an_edited_file_names_its_content_on_the_command_line(tmp_path):
    data, saved = tmp_path / "features.parquet", tmp_path / "baseline.json"
    shutil.copy(FIXTURES / "features.parquet", data)
    run = run_cli("run", "--model", str(FIXTURES / "mlp_reference.onnx"), "--data", str(data), "--input", "features=f*",
                  "--rows", "200", "--time-budget", "2", "--save", str(saved), "-q")  # fmt: skip
    assert run.returncode == 0, run.stderr
    edited_copy(FIXTURES / "features.parquet", data)  # the same path, other values
    result = run_cli("compare", "--candidate", str(FIXTURES / "mlp_reference.onnx"), "--baseline", str(saved),
                     "--input", "features=f*", "--rows", "200", "--time-budget", "2", "-q")  # fmt: skip
    assert_one_line_error(result, 2, f"--data '{data}': the data's content differs from the baseline's (SHA-256 ")
    assert "for the same 200 rows: --rows 200, --seed 0)" in result.stderr


def test_a_budget_that_needs_both_models_in_one_run_and_a_batch_size_it_lacks_are_refused(stored):
    with pytest.raises(UsageError, match="memory needs both models in the same run"):
        compare_with_baseline(str(stored), "model.fake", budgets=["memory.peak_rss:+10%"], **fake(lognormal(100 * US)))
    with pytest.raises(UsageError, match="batch_sizes 8: the baseline .* holds batch sizes 1 only"):
        compare_with_baseline(str(stored), "model.fake", batch_sizes=(1, 8), **fake(lognormal(100 * US)))


def test_a_damaged_file_another_schema_version_or_no_baseline_are_clear_errors(stored, tmp_path):
    data = json.loads(stored.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(UsageError, match=r"baseline schema_version 99 is not the one this perfgate reads \(1\)"):
        read_baseline(other)
    cut = tmp_path / "cut.json"
    cut.write_text(stored.read_text()[:500])
    with pytest.raises(DataError, match=r"--baseline '.*cut.json': cannot read it as a baseline"):
        read_baseline(cut)
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps({**data, "measured": [{"batch_size": 1}]}))
    with pytest.raises(DataError, match="a damaged baseline"):
        read_baseline(damaged)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"schema_version": 5, "verdict": "pass"}))
    with pytest.raises(UsageError, match="not a perfgate baseline"):
        read_baseline(report)
    with pytest.raises(UsageError, match="no such file"):
        read_baseline(tmp_path / "missing.json")


def test_the_unpaired_interval_is_wider_than_either_side_s_own():
    import numpy as np

    rng = np.random.default_rng(0)
    reference = [rng.lognormal(0, 0.1, 50) * 100 for _ in range(20)]
    candidate = [rng.lognormal(0, 0.1, 50) * 200 for _ in range(20)]
    interval = unpaired_interval(reference, candidate, 0.95, 0.99, seed=0)
    assert interval.low < 2.0 * 1.0 < interval.high * 1.0 and 1.8 < interval.estimate < 2.2


def test_run_save_then_compare_baseline_end_to_end(tmp_path):
    """The ~11x slower fixture against a saved baseline of the reference: exit 1; a
    fingerprint that differs: exit 2 with one line; --allow-env-mismatch: compared."""
    data, saved = str(FIXTURES / "features.parquet"), tmp_path / "baseline.json"
    run = run_cli("run", "--model", str(FIXTURES / "mlp_reference.onnx"), "--data", data, "--input", "features=f*",
                  "--time-budget", "5", "--save", str(saved), "-q")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "batch 1: p50 " in run.stdout and f"saved as a baseline: {saved}" in run.stdout
    compare = ["compare", "--candidate", str(FIXTURES / "mlp_slow.onnx"), "--baseline", str(saved), "--input", "features=f*",
               "--time-budget", "5", "-q"]  # fmt: skip
    slow = run_cli(*compare, "--json", str(tmp_path / "r.json"))
    assert slow.returncode == 1, slow.stderr
    assert "weaker evidence than a same-run comparison" in slow.stdout
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "fail"

    edited = json.loads(saved.read_text())
    edited["fingerprint"]["threads"] = "3"
    saved.write_text(json.dumps(edited))
    refused = run_cli(*compare)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("perfgate: error: the environment differs from the baseline's: threads '3' (baseline)")
    assert "--allow-env-mismatch" in refused.stderr
    allowed = run_cli(*compare, "--allow-env-mismatch")
    assert allowed.returncode == 1 and "warning: the environment differs" in allowed.stdout

    mixed = run_cli(*compare, "--reference", str(FIXTURES / "mlp_reference.onnx"))
    assert mixed.returncode == 2 and "--reference cannot be used with --baseline" in mixed.stderr
    # the call timeout bounds the candidate's measuring against a baseline as in a same-run comparison
    bounded = run_cli(*compare, "--allow-env-mismatch", "--call-timeout", "1e-9")
    assert bounded.returncode == 2 and "--call-timeout must be at least 0.001 s" in bounded.stderr, bounded.stderr
    assert run_cli(*compare, "--allow-env-mismatch", "--call-timeout", "30").returncode == 1


def test_compare_needs_a_reference_or_a_baseline():
    result = run_cli("compare", "--candidate", "c.onnx", "--data", "d.parquet")
    assert result.returncode == 2 and "Missing option '--reference'" in result.stderr
    lonely = run_cli("compare", "--candidate", "c.onnx", "--allow-env-mismatch")
    assert lonely.returncode == 2 and "--allow-env-mismatch applies to a comparison against a stored baseline" in lonely.stderr
