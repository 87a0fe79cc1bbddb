"""Generate mode's engine (request pairs, looks, checks, verdict) on fake generative models
in virtual time: every TTFT and inter-token gap is what the test says, nothing is timed;
and the options generate mode refuses, and latency under load's request threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fakes import FakeClock, generating_factory
from perfgate.backends.base import Generation
from perfgate.config import CompareConfig, resolve_task
from perfgate.engine.pipeline import run_comparison
from perfgate.errors import UsageError
from perfgate.results import Verdict
from perfgate.specs import ModelSpec
from perfgate.worker.protocol import LoadPlan
from perfgate.worker.timing import serve_requests

MS = 1e6
FAKE = "fakes:FakeGenerator"
# prefill_slope's bootstrap once took the log of the few resampled reference slopes at or
# below zero (the 1 % quantile above zero lets up to 1 % of them be): NaN in the interval
pytestmark = pytest.mark.filterwarnings("error:invalid value encountered in log:RuntimeWarning")


@pytest.fixture
def prompts_path(tmp_path):
    path = tmp_path / "prompts.parquet"
    texts = [f"prompt number {index} " + "x" * (index % 7) for index in range(12)]
    pq.write_table(pa.table({"prompt": texts, "prompt_ids": [[1, 2, 3 + i] for i in range(12)]}), path)
    return path


def run(data, reference, candidate, **options):
    clock = FakeClock()
    options.setdefault("time_budget_s", 60.0)
    options.setdefault("max_new_tokens", 16)
    config = CompareConfig.from_options(
        "reference.llm", "candidate.llm", str(data), reference_backend=FAKE, candidate_backend=FAKE, task="generate", **options
    )  # fmt: skip
    factory = generating_factory(clock, {"reference": reference, "candidate": candidate}, seed=options.get("seed", 0))
    return run_comparison(config, worker_factory=factory, clock=clock.seconds), clock


def check(report, metric, scenario=""):
    return next(c for c in report.checks if c.metric == metric and c.scenario == scenario)


def test_a_candidate_twice_as_slow_per_token_fails_on_inter_token_latency(prompts_path):
    report, _ = run(prompts_path, {"token_ns": 1 * MS}, {"token_ns": 2 * MS})
    assert report.verdict is Verdict.FAIL and report.run.stopped_because == "decided"
    itl = check(report, "itl.p50")
    assert itl.verdict is Verdict.FAIL and itl.ratio == pytest.approx(2.0, rel=0.05) and itl.ci[0] > 1.15
    assert check(report, "tokens_per_s").ratio == pytest.approx(0.5, rel=0.05)
    (series,) = report.generations
    assert series.pairs < 90 and report.series == ()  # decided early, before the p95 checks had their requests


def test_an_a_a_pair_passes_once_the_p95_checks_have_their_requests(prompts_path):
    report, _ = run(prompts_path, {"token_ns": 1 * MS}, {"token_ns": 1 * MS})
    assert report.verdict is Verdict.PASS, report.reason
    gated = [c for c in report.checks if c.budget is not None]
    assert {c.metric for c in gated} == {"ttft.p50", "ttft.p95", "itl.p50", "itl.p95"}
    ttft95 = check(report, "ttft.p95")
    assert 90 <= ttft95.n_reference <= 2 * 90  # looks grow by 1.5x
    assert all(abs(c.ratio - 1) < 0.1 for c in gated)
    agreement = check(report, "outputs.token_agreement", "greedy answers")
    assert agreement.candidate == 1.0 and report.answers.agreement == 1.0


def test_a_slower_prefill_fails_time_to_first_token_and_leaves_decode_alone(prompts_path):
    report, _ = run(prompts_path, {"prefill_ns": 2 * MS}, {"prefill_ns": 6 * MS}, budgets=["itl.p50:+50%"])
    assert report.verdict is Verdict.FAIL and report.reason.startswith("ttft.p50")
    assert check(report, "ttft.p50").ci[0] > 1.15
    assert check(report, "itl.p50").ratio == pytest.approx(1.0, abs=0.1)


def test_each_request_pair_is_one_prompt_on_both_models_in_balanced_order(prompts_path):
    report, _ = run(prompts_path, {"token_ns": 1 * MS}, {"token_ns": 1 * MS})
    (series,) = report.generations
    for reference, candidate, prompts in zip(series.reference, series.candidate, series.prompts):
        assert [r.prompt for r in reference] == [c.prompt for c in candidate] == list(prompts)
    used = Counter(index for prompts in series.prompts for index in prompts)
    assert set(used) == set(range(12)) and max(used.values()) - min(used.values()) <= 1  # the prompts go round
    for quad in range(0, series.pairs - 1, 2):  # ABBA / BAAB: each model first once in every two pairs
        assert set(series.first[quad : quad + 2]) == {"reference", "candidate"}
    request = series.reference[0][0]
    assert request.tokens == 16 and len(request.gaps_ns) == 15 and request.prompt_tokens > 0


def test_differing_answers_fail_a_token_agreement_budget(prompts_path):
    report, _ = run(prompts_path, {}, {"shift": 1}, budgets=["outputs.token_agreement:>=95%"])
    agreement = check(report, "outputs.token_agreement", "greedy answers")
    assert agreement.verdict is Verdict.FAIL and agreement.candidate == 0.0
    assert report.answers.first_difference[0] == 0 and report.verdict is Verdict.FAIL


def test_a_tokens_per_second_budget_is_a_lower_bound(prompts_path):
    report, _ = run(prompts_path, {"token_ns": 1 * MS}, {"token_ns": 1.5 * MS}, budgets=["tokens_per_s:-10%"],
                    max_latency_increase="100%")  # fmt: skip
    decode = check(report, "tokens_per_s")
    assert decode.verdict is Verdict.FAIL and decode.ci[1] < 0.9
    assert decode.reference == pytest.approx(1000, rel=0.05)  # 1 ms per token


def test_token_id_prompts_are_used_as_they_are(prompts_path):
    report, _ = run(prompts_path, {}, {}, prompt_column="prompt_ids")
    (series,) = report.generations
    assert {request.prompt_tokens for block in series.reference for request in block} == {3}


def test_a_prompt_longer_than_a_models_context_is_refused_before_measuring(prompts_path):
    with pytest.raises(UsageError, match="more than the model's context of 20"):
        run(prompts_path, {"context": 20}, {})


# --- what generate mode takes ----------------------------------------------------------------


def config(prompts_path, reference="reference.llm", candidate="candidate.llm", **options):
    backends = {"reference_backend": FAKE, "candidate_backend": FAKE} if "://" not in reference else {}
    return CompareConfig.from_options(reference, candidate, str(prompts_path), **{"task": "generate", **backends, **options})


@pytest.mark.parametrize(
    "options, words",
    [
        ({"batch_sizes": [1, 8]}, "batch_sizes shapes one-shot calls"),
        ({"size_column": "n"}, "size_column shapes one-shot calls"),
        ({"inputs": ["x=prompt"]}, "inputs shapes one-shot calls"),
        ({"cold_starts": 2}, "cold_starts shapes one-shot calls"),
        ({"concurrency": [4]}, "concurrency measures latency under load against served models"),
        ({"rates": [10.0]}, "rates measures latency under load against served models"),
        ({"budgets": ["latency.p95:+10%"]}, "latency.p95 times one-shot calls"),
        ({"budgets": ["throughput:-10%"]}, "throughput times one-shot calls"),
        ({"budgets": ["outputs.cosine:>=0.99"]}, "a generative model's is outputs.token_agreement"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"task": "summarize"}, "task must be one of infer, generate"),
    ],
)
def test_generate_mode_refuses_what_shapes_one_shot_calls(prompts_path, options, words):
    with pytest.raises(UsageError, match=words):
        config(prompts_path, **options)


@pytest.mark.parametrize(
    "budget, words",
    [("ttft.p50:+10%", "ttft.p50 times a generative model's requests; it needs task=generate"),
     ("tokens_per_s:-10%", "tokens_per_s times a generative model's requests"),
     ("outputs.token_agreement:>=95%", "compares generative models' answers")],
)  # fmt: skip
def test_generate_budgets_need_generate_mode(feature_table_path, budget, words):
    with pytest.raises(UsageError, match=words):
        CompareConfig.from_options("a.onnx", "b.onnx", str(feature_table_path), budgets=[budget])


def test_memory_budgets_are_refused_for_two_endpoints(prompts_path):
    with pytest.raises(UsageError, match="a served model's memory is its server's"):
        config(prompts_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1", budgets=["memory.peak_rss:+10%"])
    served = config(prompts_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1", concurrency=[2])
    assert served.served and served.measuring.concurrency == (2,)


def test_the_task_is_told_from_the_models(tmp_path):
    llm = "fixtures/llm/tiny_llama_shallow"
    assert resolve_task(None, [ModelSpec("reference", llm), ModelSpec("candidate", "http://h:1/v1")]) == "generate"
    onnx = "fixtures/mlp_reference.onnx"
    assert resolve_task(None, [ModelSpec("reference", onnx), ModelSpec("candidate", onnx)]) == "infer"
    with pytest.raises(UsageError, match="the reference is a generative model and the candidate is not"):
        resolve_task(None, [ModelSpec("reference", llm), ModelSpec("candidate", onnx)])
    with pytest.raises(UsageError, match="the candidate is a generative model and the reference may be one"):
        resolve_task(None, [ModelSpec("reference", "m.py", backend="my:Backend"), ModelSpec("candidate", llm)])
    with pytest.raises(UsageError, match="the reference .* is not a generative model"):
        resolve_task("generate", [ModelSpec("reference", onnx), ModelSpec("candidate", llm)])
    with pytest.raises(UsageError, match="is a generative model, timed per request"):
        resolve_task("infer", [ModelSpec("reference", llm), ModelSpec("candidate", llm)])


# --- latency under load: each request on a thread of its own ---------------------------------


class Sleepy:
    """Requests that take ``seconds`` of real time, counting how many are in flight."""

    def __init__(self, seconds: float = 0.02, fail_at: int | None = None):
        self.seconds, self.fail_at = seconds, fail_at
        self.lock = threading.Lock()
        self.in_flight = self.most = 0

    def __call__(self, prompt, max_new_tokens, clock) -> Generation:
        if prompt == self.fail_at:
            raise RuntimeError(f"prompt {prompt} failed")
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        started = clock()
        time.sleep(self.seconds)
        stamp = clock()
        with self.lock:
            self.in_flight -= 1
        return Generation(started, (stamp,), clock(), (prompt,))


def test_a_closed_loop_keeps_its_clients_in_flight_and_no_more():
    model = Sleepy()
    served = serve_requests(model, list(range(12)), 1, LoadPlan("closed", 12, clients=3), time.perf_counter_ns, lambda t: None)
    assert sorted(position for position, _ in served) == list(range(12)) and model.most == 3
    starts = [generation.started_ns for _, generation in served]
    assert starts == sorted(starts)  # in the order sent


def test_an_open_loop_sends_at_the_arrivals_whatever_is_in_flight():
    def wait(deadline):
        while time.perf_counter_ns() < deadline:
            time.sleep(0.0005)

    model = Sleepy(seconds=0.1)
    arrivals = tuple(int(i * 5e6) for i in range(6))  # every 5 ms, each request 100 ms long
    served = serve_requests(model, list(range(6)), 1, LoadPlan("open", 6, arrivals_ns=arrivals), time.perf_counter_ns, wait)
    assert len(served) == 6 and model.most >= 4


def test_a_request_that_fails_under_load_is_raised_not_lost():
    with pytest.raises(RuntimeError, match="prompt 5 failed"):
        serve_requests(Sleepy(fail_at=5), list(range(8)), 1, LoadPlan("closed", 8, clients=2), time.perf_counter_ns, lambda t: None)


def test_the_prefill_slope_is_time_to_first_token_per_prompt_token(prompts_path):
    report, _ = run(prompts_path, {"per_prompt_token_ns": 1e5, "sigma": 0.002}, {"per_prompt_token_ns": 3e5, "sigma": 0.002},
                    budgets=["prefill_slope:+50%"],
                    max_latency_increase="10.0")  # fmt: skip
    slope = check(report, "prefill_slope")
    assert slope.unit == "ns/token" and slope.reference == pytest.approx(1e5, rel=0.3)
    assert slope.ratio == pytest.approx(3.0, rel=0.1) and slope.verdict is Verdict.FAIL


def test_prompts_of_one_length_have_no_prefill_slope(prompts_path):
    report, _ = run(prompts_path, {}, {}, prompt_column="prompt_ids", time_budget_s=5.0)
    assert "the prompts are all one length" in check(report, "prefill_slope").reason


def test_a_load_scenarios_generations_round_trip_through_json():
    from perfgate.measurements import GenerationSeries, LoadScenario, RequestTiming
    from perfgate.report.json_dicts import _generations_dict, _generations_from

    request = RequestTiming(0, 5, (1, 2), 9, 3, 4, "usage")
    series = GenerationSeries(3, 2, ((request,),), ((request,),), ((0,),), ("reference",), scenario=LoadScenario("closed", clients=4))
    back = _generations_from(_generations_dict(series))
    assert back.scenario == series.scenario and back.label == "concurrency 4" and back.reference == series.reference


def test_a_missing_model_is_said_to_be_missing_whatever_the_task(prompts_path):
    from perfgate.errors import ModelLoadError
    from perfgate.engine.pipeline import run_comparison

    llm = "fixtures/llm/tiny_llama_shallow"
    assert resolve_task(None, [ModelSpec("reference", llm), ModelSpec("candidate", "pr/model")]) == "generate"
    for task in (None, "generate"):
        config = CompareConfig.from_options(llm, "pr/model", str(prompts_path), task=task)
        with pytest.raises(ModelLoadError, match="candidate: cannot load model 'pr/model': no such file"):
            run_comparison(config)
