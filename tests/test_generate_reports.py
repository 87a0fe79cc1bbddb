"""Generate-mode reports in every format, built by hand from request timings with known
numbers (no model runs): the JSON round trip (requests, answers, settings), judging a
saved report again, the text, Markdown, JUnit, HTML and tracker formats."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from conftest import run_cli

from perfgate.errors import ModelLoadError
from perfgate.engine.pipeline import error_report
from perfgate.judge.budgets import build_budgets
from perfgate.judge.checks import evaluate, overall
from perfgate.judge.rejudge import judge_again
from perfgate.measurements import GenerationSeries, GenerationsCompared, RequestTiming
from perfgate.metrics import Observations, Scope
from perfgate.report import FORMATS, render
from perfgate.report.json import dumps, loads, read_report, write_report
from perfgate.report.json_dicts import from_dict, to_dict
from perfgate.results import SCHEMA_VERSION, BackendInfo, DataReport, ModelReport, Report, RunSummary, Settings, Verdict

MS = 1_000_000
PAIRS = 16
NEW_TOKENS = 8
ENDPOINT_NOTE = "endpoints are timed from this client: network and server load included, on whatever hardware serves them"


def request(prompt: int, scale: float, index: int, counted_by: str = "model", tokens: int = NEW_TOKENS) -> RequestTiming:
    """TTFT 2 ms x scale (1.99, 2.00 or 2.01 ms by ``index``); gaps 1 ms x scale, three of
    0.99 ms, two of 1.00 ms and two of 1.01 ms per request: every median is exactly 2 or 1 ms."""
    ttft = round((2 * MS + 10_000 * (index % 3 - 1)) * scale)
    gaps = tuple(round((MS + 10_000 * (gap % 3 - 1)) * scale) for gap in range(tokens - 1))
    return RequestTiming(prompt, ttft, gaps, ttft + sum(gaps) + 50_000, tokens, prompt_tokens=7 + prompt, counted_by=counted_by)


def generations(ttft_scale: float = 1.0, itl_scale: float = 1.0, counted_by: str = "model") -> GenerationSeries:
    """``PAIRS`` request pairs, one request per block, on prompts 0 to 3 in turn; the
    candidate's TTFT ``ttft_scale`` and its gaps ``itl_scale`` times the reference's."""
    prompts = tuple((index % 4,) for index in range(PAIRS))
    reference = tuple((request(p[0], 1.0, index),) for index, p in enumerate(prompts))
    candidate = []
    for index, p in enumerate(prompts):
        base = request(p[0], itl_scale, index, counted_by)
        ttft = round(request(p[0], ttft_scale, index).ttft_ns)
        candidate.append((dataclasses.replace(base, ttft_ns=ttft, e2e_ns=ttft + sum(base.gaps_ns) + 50_000),))
    return GenerationSeries(
        max_new_tokens=NEW_TOKENS, prompt_count=28, reference=reference, candidate=tuple(candidate), prompts=prompts,
        first=tuple("reference" if index % 4 in (0, 3) else "candidate" for index in range(PAIRS)),
        instances=(), warmup_s={"reference": 0.0162, "candidate": 0.0683},
    )  # fmt: skip


ANSWERS = GenerationsCompared(
    prompts=(0, 1, 2, 3), max_new_tokens=NEW_TOKENS, exact=(True, False, True, False), first_difference=(None, 2, None, 5),
    lengths={"reference": (8, 8, 8, 8), "candidate": (8, 8, 8, 7)},
)  # fmt: skip


def model(path: str, backend: str = "transformers") -> ModelReport:
    info = BackendInfo(backend, "transformers" if backend != "openai" else "openai", "5.25.0", "cpu", 1, {})
    return ModelReport(path, info, (), 1.5, (1,), {"peak_rss": 400 * 2**20, "load_rss": 150 * 2**20})


def generate_report(
    series: GenerationSeries | None = None,
    budgets: tuple[str, ...] = ("ttft.p50:+15%", "itl.p50:+15%"),
    answers: GenerationsCompared | None = ANSWERS,
    candidate_path: str = "fixtures/llm/tiny_llama_deep",
    candidate_backend: str = "transformers",
) -> Report:
    """A generate-mode report judged as the pipeline judges one, on hand-made requests."""
    series = series if series is not None else generations(itl_scale=1.3)
    scope = Scope(batch_sizes=(), outputs=True, generate=True)
    named = {budget.split(":")[0] for budget in budgets}
    chosen = [budget for budget in build_budgets(None, list(budgets), scope=scope) if budget.metric.name in named]
    models = {"reference": model("fixtures/llm/tiny_llama_shallow"), "candidate": model(candidate_path, candidate_backend)}
    memory = {side: reported.memory for side, reported in models.items()}
    observed = Observations(series=(), memory=memory, generations=(series,), answers=answers)
    checks = evaluate(observed, chosen, alpha=0.05, look=1, seed=0).checks
    verdict, reason = overall(checks)
    settings = Settings(
        batch_sizes=(), budgets=tuple(str(budget) for budget in chosen), time_budget_s=20.0, confidence=0.95, seed=0,
        threads=1, rows=None, pad_value=0.0, inputs={}, output_rows=256, task="generate", max_new_tokens=NEW_TOKENS,
        prompt_column="prompt", chat=True,
    )  # fmt: skip
    return Report(
        verdict=verdict, reason=reason, reference=models["reference"], candidate=models["candidate"], data=DataReport("fixtures/prompts.parquet", 28, 28, 0),
        settings=settings, environment=None, run=RunSummary(1, 0.9, 12.0, "decided"), checks=checks,
        generations=(series,), answers=answers, perfgate_version="0.1.0", created="2026-12-07T22:00:00Z",
    )  # fmt: skip


@pytest.fixture(scope="module")
def report() -> Report:
    return generate_report()


# --- JSON ------------------------------------------------------------------------------------


def test_a_generate_mode_report_reads_back_equal_field_by_field(report):
    read = loads(dumps(report))
    assert read.schema_version == SCHEMA_VERSION == 6
    assert read.generations == report.generations  # every request's timings, prompt, counts; pairs, first, warm-up
    assert read.answers == report.answers and read.answers.first_difference == (None, 2, None, 5)
    assert read.settings == report.settings
    assert (read.settings.task, read.settings.max_new_tokens, read.settings.prompt_column, read.settings.chat) == (
        "generate", NEW_TOKENS, "prompt", True)  # fmt: skip
    assert read.checks == report.checks
    for field in dataclasses.fields(Report):
        assert getattr(read, field.name) == getattr(report, field.name), field.name


def test_every_request_field_is_written(report):
    data = json.loads(dumps(report))
    written = data["generations"][0]
    first = written["reference"]["requests"][0][0]
    assert set(first) == {"prompt", "ttft_ns", "gaps_ns", "e2e_ns", "tokens", "prompt_tokens", "counted_by"}
    assert first["ttft_ns"] == 1_990_000 and len(first["gaps_ns"]) == NEW_TOKENS - 1 and first["prompt_tokens"] == 7
    assert written["pairs"][1] == {"prompts": [1], "first": "candidate", "instance": 0}
    assert written["warmup_s"] == {"reference": 0.0162, "candidate": 0.0683}
    assert written["reference"]["ttft"]["p50"] == 2 * MS and written["reference"]["itl"]["n"] == PAIRS * (NEW_TOKENS - 1)
    assert data["answers"]["exact"] == [True, False, True, False] and data["answers"]["unit"] == "tokens"


def test_instances_and_served_counts_round_trip():
    series = dataclasses.replace(generations(counted_by="usage"), instances=tuple(index % 2 for index in range(PAIRS)))
    report = generate_report(series, answers=dataclasses.replace(ANSWERS, unit="characters"))
    read = loads(dumps(report))
    assert read.generations[0].instances == series.instances and read.generations[0].counted_by("candidate") == "usage"
    assert read.answers.unit == "characters"


def test_each_generations_series_is_one_compact_line(report):
    lines = dumps(report).splitlines()
    opening = lines.index(' "generations": [')
    assert lines[opening + 1].startswith('  {"max_new_tokens":') and lines[opening + 2] == " ]"


def test_a_written_report_file_reads_back(tmp_path, report):
    path = tmp_path / "saved.json"
    write_report(report, path)
    assert read_report(path) == report


def test_a_version_5_report_is_still_read_as_one_shot(report):
    data = to_dict(dataclasses.replace(report, generations=(), answers=None, checks=()))
    data["schema_version"] = 5
    for key in ("generations", "answers"):
        del data[key]
    for key in ("task", "max_new_tokens", "prompt_column", "chat"):
        del data["settings"][key]
    data["series"] = []
    data["run"] = None  # an unmeasured report: nothing to check for samples
    read = from_dict(data)
    assert read.generations == () and read.answers is None and read.settings.task == "infer" and read.schema_version == 5


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda data: data["generations"][0]["candidate"]["requests"][0][0].update(ttft_ns=0), "zero or negative durations"),
        (lambda data: data["generations"][0]["reference"]["requests"][3][0]["gaps_ns"].__setitem__(0, -5), "zero or negative"),
        (lambda data: data["generations"][0]["reference"].update(requests=[]), "missing or empty"),
        (lambda data: data["generations"][0]["candidate"]["requests"][0][0].update(e2e_ns="12"), "not a whole number"),
        (lambda data: data.update(generations=[]), "no samples"),
    ],
)  # fmt: skip
def test_a_damaged_generate_report_is_refused_in_one_line(report, damage, words):
    data = json.loads(dumps(report))
    damage(data)
    with pytest.raises(Exception) as caught:
        loads(json.dumps(data))
    assert type(caught.value).__name__ == "DataError" and words in str(caught.value) and "\n" not in str(caught.value)


# --- judging again ---------------------------------------------------------------------------


def test_judging_again_with_a_wider_itl_budget_passes_what_failed(report):
    assert report.verdict is Verdict.FAIL
    failed = {check.metric: check.verdict for check in report.checks}
    assert failed["itl.p50"] is Verdict.FAIL and failed["ttft.p50"] is Verdict.PASS
    again = judge_again(report, ["itl.p50:+50%"])
    assert again.verdict is Verdict.PASS
    verdicts = {check.metric: check.verdict for check in again.checks}
    assert verdicts["itl.p50"] is Verdict.PASS and verdicts["ttft.p50"] is Verdict.PASS
    assert "itl.p50:+50%" in again.settings.budgets


def test_judging_again_with_the_same_budgets_reaches_the_same_verdict(report):
    again = judge_again(loads(dumps(report)))
    assert again.verdict is report.verdict
    assert [(c.metric, c.verdict, c.ratio) for c in again.checks] == [(c.metric, c.verdict, c.ratio) for c in report.checks]


def test_judging_again_a_tighter_budget_fails_what_passed():
    passed = generate_report(generations(itl_scale=1.1), budgets=("itl.p50:+30%",))
    assert passed.verdict is Verdict.PASS
    assert judge_again(passed, ["itl.p50:+5%"]).verdict is Verdict.FAIL


@pytest.mark.parametrize("threshold, verdict", [(">=50%", Verdict.PASS), (">=75%", Verdict.FAIL)])
def test_the_token_agreement_is_judged_again_from_the_saved_answers(report, threshold, verdict):
    again = judge_again(loads(dumps(report)), [f"outputs.token_agreement:{threshold}"])
    agreement = next(check for check in again.checks if check.metric == "outputs.token_agreement")
    assert agreement.verdict is verdict and agreement.candidate == 0.5


def test_perfgate_report_rejudges_a_saved_generate_report(tmp_path, report):
    path = tmp_path / "saved.json"
    write_report(report, path)
    assert run_cli("report", str(path)).returncode == 1
    result = run_cli("report", str(path), "--budget", "itl.p50:+50%")
    assert result.returncode == 0, result.stderr
    assert "\nPASS: " in result.stdout and "generation: 16 request pairs" in result.stdout
    as_json = run_cli("report", str(path), "--budget", "itl.p50:+50%", "--format", "json")
    again = loads(as_json.stdout)
    assert again.verdict is Verdict.PASS and again.generations == report.generations


# --- the formats -----------------------------------------------------------------------------


def test_the_text_report_has_a_generation_section_with_known_numbers(report):
    text = render(report, "text")
    lines = text.splitlines()
    start = lines.index("generation: 16 request pairs, 8 new tokens asked of each request, from 28 prompts")
    header, reference, candidate = lines[start + 1 : start + 4]
    assert header.split() == ["requests", "new", "tokens", "counted", "by", "prompt", "tokens", "TTFT", "p50", "ITL", "p50", "tokens/s"]
    # 7 gaps of 6.99 ms in all per request: 7 / 6.99 ms = 1001 tokens/s
    assert reference.split() == ["reference", "16", "8", "the", "model", "7", "to", "10", "2", "ms", "1", "ms", "1k", "tokens/s"]
    # the candidate's gaps 1.3 times longer: 1.3 ms, 770 tokens/s
    assert candidate.split() == ["candidate", "16", "8", "the", "model", "7", "to", "10", "2", "ms", "1.3", "ms", "770", "tokens/s"]
    assert "  greedy answers: 50% of 4 prompts alike token for token (8 new tokens each); the others share their first 3.5 tokens on average" in lines
    assert "measured 16 request pairs of 8 new tokens per model in 900 ms" in text
    assert ENDPOINT_NOTE not in text


def test_a_served_candidate_gets_the_endpoint_note_and_its_token_count(report):
    served = generate_report(generations(itl_scale=1.3, counted_by="chunks"), candidate_path="http://localhost:8000/v1#tiny",
                             candidate_backend="openai")  # fmt: skip
    text = render(served, "text")
    assert f"  note: {ENDPOINT_NOTE}" in text.splitlines()
    assert "streamed chunks" in text and "the model" in text
    assert ENDPOINT_NOTE in render(served, "markdown") and ENDPOINT_NOTE in render(served, "html")
    assert ENDPOINT_NOTE in render(served, "junit")


@pytest.mark.parametrize("path, backend", [("https://api.example.com/v1", "custom"), ("models/llm", "openai")])
def test_either_sign_of_an_endpoint_is_enough(path, backend):
    served = generate_report(candidate_path=path, candidate_backend=backend)
    assert ENDPOINT_NOTE in render(served, "text")


def test_markdown_shows_the_generation_table_and_the_settings(report):
    text = render(report, "markdown")
    assert "**Generation:** 16 request pairs, 8 new tokens asked of each request, from 28 prompts" in text
    assert "| reference | 16 | 8 | the model | 7 to 10 | 2 ms | 1 ms | 1k tokens/s |" in text
    assert "| candidate | 16 | 8 | the model | 7 to 10 | 2 ms | 1.3 ms | 770 tokens/s |" in text
    assert "Greedy answers: 50% of 4 prompts alike" in text
    assert "| max new tokens | 8 |" in text and "| chat template | yes |" in text
    assert "16 request pairs of 8 new tokens" in text and "no latency series" not in text


def test_junit_carries_the_generation_facts_as_properties(report):
    xml = render(report, "junit")
    assert ('name="generation reference" value="16 requests, 8 new tokens each (counted by the model), prompts of 7 to 10 '
            'tokens, TTFT p50 2 ms, ITL p50 1 ms, 1k tokens/s"') in xml  # fmt: skip
    assert 'name="answers" value="greedy answers: 50% of 4 prompts' in xml


def test_the_page_draws_ttft_and_itl_distributions_of_both_models(report):
    page = render(report, "html")
    for title in ("TTFT distribution", "TTFT histogram", "ITL distribution", "ITL histogram", "TTFT across request pairs",
                  "ITL across request pairs"):  # fmt: skip
        assert f"<figcaption><strong>{title}</strong>" in page
    assert "share of gaps between tokens at or below" in page and "time to first token" in page
    assert "<h2>Generation</h2>" in page and "1k tokens/s" in page and "max new tokens" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_tracker_formats_carry_the_per_token_values_in_their_units(report):
    report = generate_report(budgets=("ttft.p50:+15%", "itl.p50:+15%", "tokens_per_s:-10%"))
    bencher = json.loads(render(report, "bencher"))
    assert bencher["ttft.p50"]["latency"]["value"] == 2 * MS and bencher["itl.p50"]["latency"]["value"] == pytest.approx(1.3 * MS)
    assert bencher["tokens_per_s"]["tokens-per-second"]["value"] == pytest.approx(7e9 / (6.99 * MS * 1.3), rel=1e-3)
    smaller = {entry["name"]: entry for entry in json.loads(render(report, "customSmallerIsBetter"))}
    bigger = {entry["name"]: entry for entry in json.loads(render(report, "customBiggerIsBetter"))}
    assert smaller["ttft.p50"]["unit"] == "ns" and smaller["itl.p50"]["unit"] == "ns" and "e2e.p50" in smaller
    assert bigger["tokens_per_s"]["unit"] == "tokens/s" and "tokens_per_s" not in smaller
    assert "verdict fail" in bigger["tokens_per_s"]["extra"]  # 1.3x slower per token: under the -10% budget


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_a_generate_report_and_its_error_report(report, fmt):
    assert render(report, fmt)
    failed = dataclasses.replace(error_report(ModelLoadError("candidate: cannot load model 'x': bad")), settings=report.settings)
    assert render(failed, fmt)
    # the page numbers its SVG clip paths on from the last page drawn
    def drawn(text: str) -> str:
        return re.sub(r"clip\d+", "clip", text)

    assert drawn(render(loads(dumps(report)), fmt)) == drawn(render(report, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_requests_of_one_token_and_no_answers(fmt):
    single = generations()
    single = dataclasses.replace(single, reference=tuple((request(0, 1.0, i, tokens=1),) for i in range(PAIRS)),
                                 candidate=tuple((request(0, 1.0, i, tokens=1),) for i in range(PAIRS)))  # fmt: skip
    report = generate_report(single, budgets=("ttft.p50:+15%",), answers=None)
    assert render(report, fmt)
    assert loads(dumps(report)).generations == report.generations
    if fmt == "text":
        lines = render(report, fmt).splitlines()
        row = lines[lines.index("generation: 16 request pairs, 8 new tokens asked of each request, from 28 prompts") + 2]
        assert row.split()[-2:] == ["-", "-"]  # no gap, no decode: no ITL, no tokens/s


def test_tokens_per_second_is_never_written_in_scientific_notation():
    from perfgate.formatting import format_value

    assert format_value(1001.4, "tokens/s") == "1k tokens/s" and format_value(12.34, "tokens/s") == "12.3 tokens/s"
    assert not any("e+" in format_value(value, "tokens/s") for value in (999.9, 1e4, 2.5e6, math.pi))
    # the same rounding at a unit's edge, for every scaled value
    assert format_value(999_900, "ns") == "1 ms" and format_value(1023.9, "bytes") == "1 KiB"
    assert format_value(999.96, "samples/s") == "1k/s" and format_value(999.4, "ns") == "999 ns"


def test_a_load_scenarios_generations_are_named_by_their_scenario():
    from perfgate.measurements import GenerationSeries, LoadScenario, RequestTiming
    from perfgate.report.generation import heading

    request = RequestTiming(0, 5_000_000, (1_000_000,), 7_000_000, 2, 3, "usage")
    one = GenerationSeries(2, 3, ((request,),), ((request,),), ((0,),), ("reference",))
    load = GenerationSeries(2, 3, ((request,) * 8,) * 2, ((request,) * 8,) * 2, ((0,) * 8,) * 2, ("reference", "candidate"),
                            scenario=LoadScenario("closed", clients=4))  # fmt: skip
    assert heading(one) == "1 request pair, 2 new tokens asked of each request, from 3 prompts"
    assert heading(load) == "concurrency 4: 2 episode pairs of 8 requests, 2 new tokens asked of each request, from 3 prompts"
