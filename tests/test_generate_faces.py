"""Generate mode's bad inputs through the command line, each one line ``perfgate: error:``
with its exit code (2 for what the user wrote, 3 for what went wrong running), an error
report where --json asked for one, never a traceback and never a pass; served models'
faults from a small server on loopback (tests/test_openai_endpoint.py's). And
``perfgate.measure`` on one generative model: its requests and absolute budgets."""

from __future__ import annotations

import json
import shutil
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, run_cli
from test_openai_endpoint import Faults, QuietServer, free_port, needs_client

import perfgate
from perfgate.errors import UsageError
from perfgate.engine.single_generation import GenerationResult
from perfgate.measurements import RequestTiming
from perfgate.results import Verdict

LLM = FIXTURES / "llm"
SHALLOW, DEEP = LLM / "tiny_llama_shallow", LLM / "tiny_llama_deep"
PROMPTS = FIXTURES / "prompts.parquet"
SECRET = "sk-live-7f3a9c1e5b2d4680"


def compare(tmp_path, *args: str, env: dict | None = None):
    """The command with a short run and a JSON report; (result, the report's verdict)."""
    report = tmp_path / "report.json"
    result = run_cli("compare", *args, "--time-budget", "3", "--json", str(report), "-q", env=env)
    return result, json.loads(report.read_text())["verdict"] if report.exists() else None


def assert_error(result, verdict, code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfgate: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr and verdict == "error"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Prompt files that are wrong in one way each."""
    folder = tmp_path_factory.mktemp("prompts")
    pq.write_table(pa.table({"text": ["hello", "there"]}), folder / "no_prompt.parquet")
    pq.write_table(pa.table({"prompt": [1.5, 2.5]}), folder / "floats.parquet")
    # 600 ids inside the 384-token vocabulary: longer than the 512-position context
    too_long = [[(index % 300) + 1 for index in range(600)]]
    pq.write_table(pa.table({"prompt_ids": pa.array(too_long, pa.list_(pa.int32()))}), folder / "long.parquet")
    return folder


# --- what the user wrote: exit 2 -------------------------------------------------------------


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["-r", str(FIXTURES / "mlp_reference.onnx"), "-c", str(FIXTURES / "mlp_reference.onnx"), "--task", "generate"],
         "--task generate: the reference"),
        (["-r", str(SHALLOW), "-c", str(DEEP), "--task", "infer"], "is a generative model, timed per request: use --task generate"),
        (["-r", str(SHALLOW), "-c", str(FIXTURES / "mlp_reference.onnx")], "compare two of a kind"),
        (["-r", str(SHALLOW), "-c", str(DEEP), "--max-new-tokens", "0"], "'--max-new-tokens': 0 is not in the range x>=1"),
    ],
    ids=["one-shot-as-generate", "generative-as-infer", "one-of-each", "zero-new-tokens"],
)
def test_a_task_the_models_are_not_is_a_usage_error_before_loading(tmp_path, args, fragment):
    result, verdict = compare(tmp_path, *args, "-d", str(PROMPTS))
    assert_error(result, verdict if "--max-new-tokens" not in args else "error", 2, fragment)


@pytest.mark.parametrize(
    "file,fragment",
    [("no_prompt.parquet", "--prompt-column prompt: data"), ("floats.parquet", "the column holds double, not prompts")],
    ids=["missing-column", "floats"],
)
def test_a_prompt_column_that_holds_no_prompts_is_said_before_any_model_loads(tmp_path, data, file, fragment):
    unloadable = tmp_path / "no_tokenizer"  # loading it would end the run with exit 3 first
    shutil.copytree(SHALLOW, unloadable)
    (unloadable / "tokenizer.json").unlink()
    result, verdict = compare(tmp_path, "-r", str(SHALLOW), "-c", str(unloadable), "-d", str(data / file), "--max-new-tokens", "8")
    assert_error(result, verdict, 2, fragment)


@pytest.mark.slow
def test_prompts_longer_than_the_models_context_are_a_usage_error(tmp_path, data):
    result, verdict = compare(tmp_path, "-r", str(SHALLOW), "-c", str(DEEP), "-d", str(data / "long.parquet"),
                              "--prompt-column", "prompt_ids", "--max-new-tokens", "8")  # fmt: skip
    assert_error(result, verdict, 2, "it needs 608 positions, more than the model's context of 512")


@pytest.mark.slow
def test_chat_with_a_model_without_a_chat_template_is_a_usage_error(tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(SHALLOW, plain)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    result, verdict = compare(tmp_path, "-r", str(SHALLOW), "-c", str(plain), "-d", str(PROMPTS), "--chat")
    assert_error(result, verdict, 2, f"candidate: --chat: model '{plain}' has no chat template")


@pytest.mark.slow
def test_a_causal_lm_directory_without_its_tokenizer_cannot_be_loaded(tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(SHALLOW, bare)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bare / name).unlink()
    result, verdict = compare(tmp_path, "-r", str(SHALLOW), "-c", str(bare), "-d", str(PROMPTS))
    assert_error(result, verdict, 3, f"candidate: cannot load model '{bare}' with transformers: the directory has no tokenizer")


def test_a_header_secret_not_in_the_environment_is_named_never_shown(tmp_path):
    result, verdict = compare(tmp_path, "-r", str(SHALLOW), "-c", "http://127.0.0.1:9/v1", "-d", str(PROMPTS),
                              "--candidate-header", "Authorization: Bearer ${NOPE_UNSET}")  # fmt: skip
    assert_error(result, verdict, 2, "candidate: header Authorization: environment variable NOPE_UNSET is not set")
    assert "Bearer" not in result.stderr


# --- served models: a closed port, and a server's faults ---------------------------------------


class Dying(Faults):
    """As Faults, and ``/afterN_MODE/v1`` answers N requests well, then as MODE."""

    answered: dict = {}

    def do_POST(self) -> None:
        mode = self.path.split("/")[1]
        if mode.startswith("after"):
            count, fault = mode[len("after"):].split("_", 1)
            Dying.answered[mode] = Dying.answered.get(mode, 0) + 1
            rest = self.path.split("/", 2)[2]
            self.path = f"/{'ok' if Dying.answered[mode] <= int(count) else fault}/{rest}"
        super().do_POST()


@pytest.fixture(scope="module")
def faults():
    server = QuietServer(("127.0.0.1", 0), Dying)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_client
def test_an_endpoint_nothing_listens_on_is_a_runtime_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result, verdict = compare(tmp_path, "-r", url, "-c", url, "-d", str(PROMPTS))
    assert_error(result, verdict, 3, f"cannot reach model endpoint {url}: connection refused")


@needs_client
@pytest.mark.parametrize(
    "mode,code,fragment",
    [
        ("ok/v1#other", 2, "serves no model 'other'; it serves: 'fake'"),
        ("several/v1", 2, "serves 2 models ('small', 'large'); name the one to run"),
        ("status500/v1", 3, "answered HTTP 500 to POST /completions: Internal Server Error"),
        ("garbage/v1", 3, "streamed an event that is not JSON"),
        ("cut/v1", 3, "the connection was closed in the middle of the answer"),
        # the warm-up (2) and some timed request pairs go well first
        ("after14_cut/v1", 3, "the connection was closed in the middle of the answer"),
        ("after14_status500/v1", 3, "answered HTTP 500 to POST /completions"),
    ],
)
def test_a_served_model_s_fault_is_one_line_and_never_a_pass(tmp_path, faults, mode, code, fragment):
    result, verdict = compare(tmp_path, "-r", f"{faults}/ok/v1", "-c", f"{faults}/{mode}", "-d", str(PROMPTS),
                              "--max-new-tokens", "4")  # fmt: skip
    assert_error(result, verdict, code, fragment)
    assert result.stderr.startswith(f"perfgate: error: candidate: ")


@needs_client
def test_a_stream_that_stalls_ends_at_the_call_timeout(tmp_path, faults):
    result, verdict = compare(tmp_path, "-r", f"{faults}/ok/v1", "-c", f"{faults}/stall/v1", "-d", str(PROMPTS),
                              "--max-new-tokens", "4", "--call-timeout", "0.5")  # fmt: skip
    assert_error(result, verdict, 3, "the server sent nothing for 0.5 s, so the request was given up")


@needs_client
def test_a_secret_a_refusing_server_echoes_stays_out_of_the_error_and_the_report(tmp_path, faults):
    result, verdict = compare(tmp_path, "-r", f"{faults}/ok/v1", "-c", f"{faults}/status401/v1", "-d", str(PROMPTS),
                              "--candidate-header", "Authorization: Bearer ${PERFGATE_TEST_KEY}",
                              env={"PERFGATE_TEST_KEY": SECRET})  # fmt: skip
    assert_error(result, verdict, 2, "answered HTTP 401")
    assert SECRET not in result.stderr + result.stdout + (tmp_path / "report.json").read_text()


@needs_client
def test_a_config_file_keeps_an_endpoint_s_url_as_written_and_its_headers(tmp_path, faults):
    shutil.copy(PROMPTS, tmp_path / "prompts.parquet")
    (tmp_path / "perfgate.toml").write_text(f"""
[comparisons.served]
reference = "{faults}/ok/v1"
candidate = "{faults}/ok/v1#fake"
data = "prompts.parquet"
candidate-headers = ["X-Api-Key: ${{PERFGATE_TEST_KEY}}"]
max-new-tokens = 4
time-budget = 2
""")
    Faults.seen.clear()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("compare", "--config", str(tmp_path / "perfgate.toml"), "--json", str(tmp_path / "r.json"), "-q",
                     cwd=elsewhere, env={"PERFGATE_TEST_KEY": SECRET})  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["compared"]["candidate"]["path"] == f"{faults}/ok/v1#fake" and report["settings"]["task"] == "generate"
    assert any(headers.get("X-Api-Key") == SECRET for _, headers, _ in Faults.seen)
    assert SECRET not in result.stderr + (tmp_path / "r.json").read_text()


# --- perfgate.measure on one generative model -------------------------------------------------


def requests(*gaps_ms: float, ttft_ms: float = 5.0) -> tuple[tuple[RequestTiming, ...], ...]:
    """One request per block, each with 5 gaps of the given size."""
    return tuple(
        (RequestTiming(index, int(ttft_ms * 1e6), (int(gap * 1e6),) * 5, int((ttft_ms + 5 * gap) * 1e6), 6),)
        for index, gap in enumerate(gaps_ms)
    )


def measured(blocks) -> GenerationResult:
    return GenerationResult("m", 6, 4, blocks, {"peak_rss": 100 << 20}, 0.01, 1.0, 2.0, "time budget")


def test_a_generative_measurement_is_judged_on_each_family_s_own_values():
    result = measured(requests(*([2.0, 2.2, 1.8, 2.1] * 30)))
    judgement = result.judge(ttft_p95="1s", itl_p50="1us", e2e_mean="1s", tokens_per_s="100/s", peak_rss="1GB")
    verdicts = {check.metric: check.verdict for check in judgement.checks}
    assert verdicts == {"ttft.p95": Verdict.PASS, "itl.p50": Verdict.FAIL, "e2e.mean": Verdict.PASS,
                        "tokens_per_s": Verdict.PASS, "memory.peak_rss": Verdict.PASS}  # fmt: skip
    assert judgement.verdict is Verdict.FAIL and "itl.p50" in judgement.reason
    assert result.tokens_per_s == pytest.approx(1e3 / 2.025, rel=0.01)
    assert result.itl(0.5) == pytest.approx(2.05e6, rel=0.05) and result.ttft(0.95) == 5e6
    few = measured(requests(2.0, 2.0, 2.0))
    assert few.judge(ttft_p95="1s").verdict is Verdict.INCONCLUSIVE  # 3 requests: p95 needs 90
    with pytest.raises(AssertionError, match="itl.p50"):
        result.assert_within(itl_p50="1us")


@pytest.mark.parametrize(
    "budgets,message",
    [
        ({}, "no budget given; give one or more of ttft_p95"),
        ({"p95": "1s"}, "unknown budget 'p95' for a generative model"),
        ({"ttft_throughput": "1/s"}, "unknown budget 'ttft_throughput'"),
        ({"ttft_p95": 5}, "ttft_p95=5: write a duration with its unit"),
        ({"tokens_per_s": "fast"}, "tokens_per_s='fast': cannot read a rate"),
    ],
)
def test_a_budget_a_generative_measurement_cannot_judge_is_a_usage_error(budgets, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        measured(requests(2.0)).judge(**budgets)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be a whole number of at least 1, got 0"),
        ({"batch_size": 4}, "batch_size applies to a model timed call by call"),
        ({"task": "infer"}, "is a generative model, timed per request"),
        ({"prompt_column": ""}, "prompt_column must name a column"),
    ],
)
def test_measure_refuses_what_a_generative_model_cannot_take_before_loading(options, message):
    with pytest.raises(UsageError, match=message):
        perfgate.measure(SHALLOW, PROMPTS, **options)


def test_measure_refuses_generate_options_for_a_one_shot_model():
    with pytest.raises(UsageError, match="max_new_tokens applies to a generative model"):
        perfgate.measure(FIXTURES / "mlp_reference.onnx", FIXTURES / "features.parquet", max_new_tokens=8)
    with pytest.raises(UsageError, match="is not a generative model"):
        perfgate.measure(FIXTURES / "mlp_reference.onnx", FIXTURES / "features.parquet", task="generate")


@pytest.mark.slow
def test_measure_times_a_generative_model_s_requests_in_its_worker():
    result = perfgate.measure(SHALLOW, PROMPTS, max_new_tokens=8, time_budget_s=2, max_rows=5)
    assert result.kind == "generate" and result.prompts == 5 and result.stopped_because in ("time budget", "enough samples")
    assert len(result.requests) >= 1 and all(request.tokens == 8 and len(request.gaps_ns) == 7 for request in result.requests)
    assert result.backend.backend == "transformers" and result.peak_rss > 0
    assert result.settings["max_new_tokens"] == 8 and result.settings["task"] == "generate"
    assert result.judge(ttft_p50="30s", itl_p50="30s").verdict in (Verdict.PASS, Verdict.INCONCLUSIVE)


@pytest.mark.parametrize(
    "kwargs,problem",
    [
        ({"ttft_p95": "200ms", "itl_p50": "5ms", "e2e_mean": "1s", "tokens_per_s": "50 tokens/s"}, None),
        ({"ttft_p95": "fast"}, "ttft_p95='fast'"),
        ({"ttft_peak": "1s"}, "unknown budget 'ttft_peak' for a generative model"),
    ],
)
def test_the_marker_takes_a_generative_model_s_budgets(kwargs, problem):
    from perfgate.integrations.pytest_plugin import marker_problem

    found = marker_problem((), kwargs)
    assert found == problem if problem is None else problem in found


def test_a_stored_baseline_of_a_generative_model_is_refused_in_one_line(tmp_path):
    # it once ended in "internal error: AttributeError: 'GenerationResult' object has no attribute 'inputs'"
    saved = tmp_path / "baseline.json"
    result = run_cli("run", "-m", str(SHALLOW), "-d", str(PROMPTS), "--time-budget", "2", "--save", str(saved), "-q")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("perfgate: error: ") and "is a generative model: stored baselines hold one-shot models' calls" in line
    assert not saved.exists()


@needs_client
def test_calibrate_sends_a_served_models_header_and_never_shows_it(tmp_path, faults):
    report = tmp_path / "calibration.json"
    env = {"PERFGATE_TEST_KEY": "sk-calibrate-secret-123"}
    result = run_cli("calibrate", "-m", f"{faults}/ok/v1", "-d", str(PROMPTS), "--max-new-tokens", "4", "--time-budget", "1",
                     "--header", "Authorization: Bearer ${PERFGATE_TEST_KEY}", "--json", str(report), "-q", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert any(headers.get("Authorization") == "Bearer sk-calibrate-secret-123" for _, headers, _ in Faults.seen)
    assert "sk-calibrate" not in result.stdout + result.stderr + report.read_text()
    unset = run_cli("calibrate", "-m", f"{faults}/ok/v1", "-d", str(PROMPTS), "--header", "Authorization: Bearer ${NOPE_UNSET}", "-q")
    assert unset.returncode == 2 and "environment variable NOPE_UNSET is not set" in unset.stderr
