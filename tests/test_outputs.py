"""The output-equivalence guard on fake backends in virtual time: both models' outputs on
the same seeded rows, reduced to differences, cosine and top-1 agreement, reported as
info and gated by threshold budgets; a candidate returning NaN or Inf fails, a reference
returning them is an error, outputs that cannot be paired are a usage error."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fakes import FakeClock, in_process_factory, lognormal, scores
from perfgate.judge.budgets import parse_budget
from perfgate.config import CompareConfig
from perfgate.errors import BudgetError, PerfgateRuntimeError, UsageError
from perfgate.engine.outputs import MIN_OUTPUT_BATCHES
from perfgate.engine.pipeline import run_comparison
from perfgate.judge.rejudge import judge_again
from perfgate.report.json import dumps, loads
from perfgate.report.text import render_text
from perfgate.results import SCHEMA_VERSION, Verdict

MS = 1e6


def compare(data, *, reference=scores, candidate=scores, budgets=(), **options):
    clock = FakeClock()
    options.setdefault("cold_starts", 0)
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", time_budget_s=20.0,
        budgets=budgets, max_latency_increase="50%", **options,
    )  # fmt: skip
    factory = in_process_factory(
        clock, {"reference": lognormal(1 * MS, 0.05), "candidate": lognormal(1 * MS, 0.05)},
        per_role={"reference": {"outputs": reference}, "candidate": {"outputs": candidate}},
    )  # fmt: skip
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def checks(report, metric):
    return [check for check in report.checks if check.metric == metric]


def nudged(size: float, seed: int = 0):
    """The fake's scores plus seeded noise of about ``size``: a quantized model's answers."""

    def outputs(feed):
        values = scores(feed)["scores"]
        noise = np.random.default_rng([seed, int(abs(values[0, 0]) * 1e6)]).standard_normal(values.shape)
        return {"scores": values + size * noise}

    return outputs


def with_nan_on_negative_first_feature(feed):
    values = scores(feed)["scores"].copy()
    values[values[:, 0] < -1.5, 1] = np.nan
    return {"scores": values}


# --- budgets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["outputs.cosine:>=0.99", "outputs.cosine_min:>=0.9", "outputs.max_abs_diff:<=0.001",
                                  "outputs.mean_abs_diff:<=1e-05", "outputs.top1_agreement:>=99%",
                                  "outputs.top1_agreement:>=99.5%", "outputs.cosine:>=1"])  # fmt: skip
def test_threshold_budgets_read_back_from_their_text(text):
    budget = parse_budget(text)
    assert budget.threshold is not None and budget.limit is None
    assert parse_budget(str(budget)) == budget
    assert str(budget) == text


def test_threshold_budgets_hold_their_comparison_and_value():
    assert (parse_budget("outputs.max_abs_diff:<=1e-3").threshold, parse_budget("outputs.max_abs_diff:<=1e-3").at_least) == (0.001, False)
    top1 = parse_budget("outputs.top1_agreement:>= 99 %")
    assert top1.threshold == pytest.approx(0.99) and top1.at_least and str(top1) == "outputs.top1_agreement:>=99%"
    assert parse_budget("outputs.top1_agreement:>=0.99").threshold == 0.99
    # the existing forms are unchanged
    assert str(parse_budget("latency.p95:+10%")) == "latency.p95:+10%"
    assert str(parse_budget("memory.peak_rss:+64MiB")) == "memory.peak_rss:+64MiB"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("outputs.cosine:0.99", "write an outputs budget as a comparison and a number, e.g. outputs.cosine:>=0.99"),
        ("outputs.cosine:<=0.99", "outputs.cosine is better higher"),
        ("outputs.max_abs_diff:>=1e-3", "outputs.max_abs_diff is better lower"),
        ("outputs.cosine:>=99%", "only outputs.top1_agreement and outputs.token_agreement take a percentage"),
        ("outputs.cosine:>=1.5", "outputs.cosine is -1 to 1"),
        ("outputs.top1_agreement:>=101%", "outputs.top1_agreement is 0 to 1"),
        ("outputs.max_abs_diff:<=-1", "outputs.max_abs_diff is 0 or more"),
        ("outputs.non_finite:<=3", "outputs.non_finite takes no budget"),
        ("outputs.cosine:>=abc", "write an outputs budget as a comparison"),
    ],
)
def test_bad_outputs_budgets_say_what_to_write(text, fragment):
    with pytest.raises(BudgetError, match="budget '.*': ") as caught:
        parse_budget(text)
    assert fragment in str(caught.value)


def test_an_outputs_budget_without_outputs_compared_is_a_usage_error(feature_table_path):
    with pytest.raises(UsageError, match=r"budget outputs.cosine:>=0.99: outputs are not compared with output_rows=0"):
        CompareConfig.from_options("r.fake", "c.fake", str(feature_table_path), output_rows=0, budgets=["outputs.cosine:>=0.99"])
    with pytest.raises(UsageError, match="output_rows must be 0 or more"):
        CompareConfig.from_options("r.fake", "c.fake", str(feature_table_path), output_rows=-1)


# --- the comparison --------------------------------------------------------------------------


def test_identical_outputs_pass_the_tightest_budgets(feature_table_path):
    report = compare(feature_table_path, budgets=["outputs.max_abs_diff:<=0", "outputs.cosine_min:>=1", "outputs.top1_agreement:>=100%"])
    assert report.verdict is Verdict.PASS
    (difference,) = report.outputs.outputs
    assert (difference.max_abs_diff, difference.mean_abs_diff, difference.cosine, difference.cosine_min) == (0.0, 0.0, 1.0, 1.0)
    assert difference.top1_agreement == 1.0 and difference.top1_positions == 200
    assert [c.verdict for c in report.checks if c.metric.family == "outputs"] == [Verdict.PASS, Verdict.INFO, Verdict.INFO,
                                                                                 Verdict.PASS, Verdict.PASS, Verdict.PASS]  # fmt: skip


def test_every_measure_is_reported_as_info_without_a_budget(feature_table_path):
    report = compare(feature_table_path, candidate=nudged(1e-3))
    info = {c.metric: c for c in report.checks if c.metric.family == "outputs" and c.verdict is Verdict.INFO}
    assert set(info) == {"outputs.max_abs_diff", "outputs.mean_abs_diff", "outputs.cosine", "outputs.cosine_min", "outputs.top1_agreement"}
    assert all(c.scenario == "scores" and c.batch_size is None and c.n_candidate == 200 for c in info.values())
    assert 1e-3 < info["outputs.max_abs_diff"].candidate < 1e-2
    assert info["outputs.max_abs_diff"].reason.startswith("largest |difference| ")
    assert "(row " in info["outputs.max_abs_diff"].reason and "(row " in info["outputs.cosine_min"].reason
    (guard,) = checks(report, "outputs.non_finite")
    assert guard.verdict is Verdict.PASS and guard.budget == "<=0"
    assert report.verdict is Verdict.PASS and report.reason == "all 3 checks within budget"


def test_small_differences_pass_a_loose_budget_and_fail_a_tight_one(feature_table_path):
    loose = compare(feature_table_path, candidate=nudged(1e-3), budgets=["outputs.max_abs_diff:<=0.01", "outputs.cosine:>=0.999"])
    assert loose.verdict is Verdict.PASS
    tight = compare(feature_table_path, candidate=nudged(1e-3), budgets=["outputs.max_abs_diff:<=1e-4"])
    assert tight.verdict is Verdict.FAIL
    assert tight.reason.startswith("outputs.max_abs_diff at output scores: largest |difference| ")
    assert tight.reason.endswith("on 200 rows, over the <=0.0001 budget")
    assert tight.run.looks == 1  # a failed check decides: no need to measure on


def test_other_weights_fail_far_outside(feature_table_path):
    def other(feed):
        values = scores(feed)["scores"]
        return {"scores": values @ np.random.default_rng(9).standard_normal((values.shape[1], values.shape[1]))}

    report = compare(feature_table_path, candidate=other, budgets=["outputs.cosine:>=0.99", "outputs.top1_agreement:>=99%"])
    assert report.verdict is Verdict.FAIL
    cosine, top1 = checks(report, "outputs.cosine")[0], checks(report, "outputs.top1_agreement")[0]
    assert cosine.verdict is top1.verdict is Verdict.FAIL
    assert cosine.candidate < 0.5 and top1.candidate < 0.6


def test_a_candidate_returning_nan_fails_without_any_outputs_budget(feature_table_path):
    report = compare(feature_table_path, candidate=with_nan_on_negative_first_feature)
    assert report.verdict is Verdict.FAIL
    assert report.reason.startswith("outputs.non_finite at output scores: the candidate returned ")
    (guard,) = checks(report, "outputs.non_finite")
    table = pq.read_table(feature_table_path)
    bad_rows = np.flatnonzero(table.column("f0").to_numpy() < -1.5)
    assert guard.candidate == len(bad_rows) > 0 and guard.reference == 0
    assert f"NaN values in output scores (of 800 on 200 rows; the first on row {bad_rows[0]})" in guard.reason
    assert report.run.looks == 1
    # the other measures are over the values finite in both
    assert checks(report, "outputs.max_abs_diff")[0].candidate == 0.0


def test_inf_is_named_as_such(feature_table_path):
    def inf_on_row_3(feed):
        values = scores(feed)["scores"].copy()
        if feed["x"][0, 0] == np.float32(pq.read_table(feature_table_path).column("f0")[3].as_py()):
            values[0, 0] = np.inf
        return {"scores": values}

    report = compare(feature_table_path, candidate=inf_on_row_3)
    assert report.verdict is Verdict.FAIL
    assert "the candidate returned 1 Inf value in output scores (of 800 on 200 rows; the first on row 3)" in report.reason


def test_a_reference_returning_nan_is_an_error_naming_it(feature_table_path):
    with pytest.raises(PerfgateRuntimeError) as caught:
        compare(feature_table_path, reference=with_nan_on_negative_first_feature)
    message = str(caught.value)
    assert message.startswith("the reference model 'reference.fake' returned ")
    assert "NaN values in output scores" in message and "output_rows=0" in message and "\n" not in message
    assert caught.value.exit_code == 3


def test_outputs_that_cannot_be_paired_are_a_usage_error(feature_table_path):
    def fewer(feed):
        return {"scores": scores(feed)["scores"][:, :2]}

    with pytest.raises(UsageError) as caught:
        compare(feature_table_path, candidate=fewer)
    assert str(caught.value).startswith(
        "output shapes differ: reference 'reference.fake' output 'scores' is [1, 4], candidate 'candidate.fake' output 'scores' is [1, 2]"
    )

    def two(feed):
        return {"scores": scores(feed)["scores"], "embedding": scores(feed)["scores"]}

    with pytest.raises(UsageError, match=r"different numbers of outputs: reference 'reference.fake' 1 \(scores\), "
                                         r"candidate 'candidate.fake' 2 \(scores, embedding\)"):  # fmt: skip
        compare(feature_table_path, candidate=two)


def test_outputs_named_differently_pair_by_position(feature_table_path):
    def as_list(feed):
        return [scores(feed)["scores"], scores(feed)["scores"][:, 0]]

    def as_dict(feed):
        return {"logits": scores(feed)["scores"], "first": scores(feed)["scores"][:, 0]}

    report = compare(feature_table_path, reference=as_dict, candidate=as_list, budgets=["outputs.top1_agreement:>=99%"])
    assert [d.label for d in report.outputs.outputs] == ["logits/output_0", "first/output_1"]
    assert report.outputs.outputs[1].top1_agreement is None  # one value per row: no class axis
    # the top-1 budget holds where there are classes, and leaves the other output alone
    assert [(c.scenario, c.verdict) for c in checks(report, "outputs.top1_agreement")] == [("logits/output_0", Verdict.PASS)]
    assert report.verdict is Verdict.PASS
    assert "reference output first with candidate output output_1: 1 values per row" in render_text(report)


def test_a_backend_without_outputs_is_noted_and_leaves_outputs_budgets_undecided(feature_table_path):
    report = compare(feature_table_path, candidate=lambda feed: None, budgets=["outputs.cosine:>=0.99"])
    assert report.outputs.outputs == () and report.outputs.note == "the candidate's backend returns no outputs"
    (cosine,) = checks(report, "outputs.cosine")
    assert cosine.verdict is Verdict.INCONCLUSIVE and "the candidate's backend returns no outputs" in cosine.reason


def test_a_top1_budget_without_a_class_axis_anywhere_is_undecided(feature_table_path):
    def one_value(feed):
        return {"score": scores(feed)["scores"][:, 0]}

    report = compare(feature_table_path, reference=one_value, candidate=one_value, budgets=["outputs.top1_agreement:>=99%"])
    (top1,) = checks(report, "outputs.top1_agreement")
    assert top1.verdict is Verdict.INCONCLUSIVE and "has no class axis" in top1.reason


def test_non_numeric_outputs_are_noted_not_compared(feature_table_path):
    def with_labels(feed):
        return {"scores": scores(feed)["scores"], "label": np.array(["a"] * len(feed["x"]))}

    report = compare(feature_table_path, reference=with_labels, candidate=with_labels)
    assert [d.label for d in report.outputs.outputs] == ["scores"]
    assert report.outputs.note == "output label/label not compared: its values are not numbers (<U1/<U1)"


# --- which rows ------------------------------------------------------------------------------


def test_the_rows_compared_are_a_seeded_sample_of_the_first_batch_size(feature_table_path):
    report = compare(feature_table_path, batch_sizes=(4, 1), output_rows=40, seed=3)
    compared = report.outputs
    assert compared.batch_size == 4 and compared.total_batches == 50 and compared.seed == 3
    assert len(compared.batches) == 10 and list(compared.batches) == sorted(set(compared.batches))
    assert compared.rows == tuple(4 * b + offset for b in compared.batches for offset in range(4))
    assert compare(feature_table_path, batch_sizes=(4, 1), output_rows=40, seed=3).outputs.batches == compared.batches
    assert compare(feature_table_path, batch_sizes=(4, 1), output_rows=40, seed=4).outputs.batches != compared.batches
    assert "outputs compared on 40 of 200 rows: 10 of 50 batches of batch size 4, drawn with seed 3" in render_text(report)


def test_rows_are_the_files_row_numbers_with_a_row_sample(tmp_path):
    path = tmp_path / "marked.parquet"
    pq.write_table(pa.table({"f0": np.arange(300, dtype=np.float64), **{f"f{i}": np.zeros(300) for i in (1, 2, 3)}}), path)
    seen = []

    def remember(feed):
        seen.append(int(feed["x"][0, 0]))
        return scores(feed)

    report = compare(path, candidate=remember, rows=100, output_rows=1000)
    compared = report.outputs
    assert len(compared.rows) == 100 and compared.batches == tuple(range(100))
    assert list(compared.rows) == seen[:100]  # the first calls are the outputs' own, on those very rows


def test_no_outputs_are_compared_with_output_rows_0(feature_table_path):
    report = compare(feature_table_path, output_rows=0)
    assert report.outputs is None and not [c for c in report.checks if c.metric.family == "outputs"]
    assert report.reason == "all 2 checks within budget" and report.settings.output_rows == 0


# --- saved and judged again ------------------------------------------------------------------


def test_a_saved_report_keeps_the_outputs_and_judges_them_again(feature_table_path):
    report = compare(feature_table_path, candidate=nudged(1e-3), budgets=["outputs.cosine:>=0.999"])
    text = dumps(report)
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION and data["settings"]["output_rows"] == 256
    assert data["outputs"]["rows"] == list(report.outputs.rows)
    assert {c["metric"]: c["budget"] for c in data["checks"] if c["metric"].startswith("outputs.")}["outputs.cosine"] == ">=0.999"
    again = loads(text)
    assert again.outputs == report.outputs and again.checks == report.checks
    assert render_text(again) == render_text(report)
    same = judge_again(again)
    assert same.verdict is report.verdict and same.checks == report.checks
    tighter = judge_again(again, ["outputs.max_abs_diff:<=1e-5"])
    assert tighter.verdict is Verdict.FAIL and tighter.reason.startswith("outputs.max_abs_diff at output scores")
    assert "outputs.max_abs_diff:<=1e-05" in tighter.settings.budgets and "outputs.cosine:>=0.999" in tighter.settings.budgets


def test_a_report_from_before_outputs_were_compared_reads_and_refuses_outputs_budgets(feature_table_path):
    report = compare(feature_table_path)
    data = json.loads(dumps(report))
    data["schema_version"] = 3
    for key in ("outputs",):
        data.pop(key)
    data["settings"].pop("output_rows")
    data["checks"] = [c for c in data["checks"] if not c["metric"].startswith("outputs.")]
    old = loads(json.dumps(data))
    assert old.outputs is None and old.settings.output_rows == 0
    assert judge_again(old).verdict is Verdict.PASS
    with pytest.raises(UsageError, match="budget outputs.cosine:>=0.99: outputs are not compared"):
        judge_again(old, ["outputs.cosine:>=0.99"])


def test_large_outputs_cross_the_pipe_a_few_batches_at_a_time():
    from perfgate.engine.outputs import MAX_BATCHES_PER_CALL, _batches_per_call

    def answers(nbytes):
        batch = {"scores": np.zeros(nbytes // 8)}
        return {"reference": [batch], "candidate": [batch]}

    assert _batches_per_call(answers(64)) == MAX_BATCHES_PER_CALL
    assert _batches_per_call(answers(2**20)) == 32
    assert _batches_per_call(answers(100 * 2**20)) == 1


def test_an_output_missing_from_a_later_batch_is_a_usage_error(feature_table_path):
    calls = []

    def sometimes(feed):
        calls.append(1)
        return scores(feed) if len(calls) < 3 else {"other": scores(feed)["scores"]}

    with pytest.raises(UsageError, match=r"output 'scores' or 'scores' is missing from the batch from row \d+; "
                                         r"the models' outputs must be the same for every batch"):  # fmt: skip
        compare(feature_table_path, candidate=sometimes)


def test_a_slow_model_compares_outputs_on_fewer_rows_rather_than_delay_the_verdict(feature_table_path):
    # 50 ms a call: 256 rows would be 25 s of both models' calls; the comparison stops after
    # about a second, once it has its minimum of batches, and says so
    clock = FakeClock()
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(feature_table_path), inputs={"x": "f*"}, cold_starts=0,
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", time_budget_s=5.0,
    )  # fmt: skip
    slowly = lognormal(50 * MS, 0.01)
    slow = run_comparison(config, worker_factory=in_process_factory(clock, {"reference": slowly, "candidate": slowly}),
                          clock=clock.seconds).outputs  # fmt: skip
    assert MIN_OUTPUT_BATCHES <= len(slow.batches) < 20 and len(slow.rows) == len(slow.batches)
    assert "compared on" in slow.note and "of the 200 rows asked for" in slow.note
    fast = compare(feature_table_path).outputs
    assert len(fast.rows) == 200 and fast.note == ""  # every row of the small file, in well under a second
