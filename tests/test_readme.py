"""The README's commands, and the option table in docs/cli.md, stay true to the code."""

import re

from conftest import ROOT, load_script
from perfgate.cli import compare
from perfgate.cli import calibrate_command

README = (ROOT / "README.md").read_text()
# the page that holds the `perfgate compare` option table
OPTIONS_PAGE = (ROOT / "docs" / "cli.md").read_text()


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(block.strip() for block in bash_blocks() if "pytest" in block)
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert test_command in ci_lines


def test_the_readme_demo_command_runs_the_demo_script():
    demo_command = next(block.strip() for block in bash_blocks() if "demo.sh" in block)
    assert demo_command.startswith("python3 -m venv .venv && ")
    assert (ROOT / "fixtures" / "demo.sh").stat().st_mode & 0o111


def documented_options(command: str | None) -> set[str]:
    """The flags in docs/cli.md's option rows: those marked '(calibrate)', or with None compare's
    (the rest: compare's table, and report's, whose flags are compare's too)."""
    rows = [row for row in re.findall(r"^\| `--[^|]*\|", OPTIONS_PAGE, re.M) if ("(calibrate)" in row) == (command == "calibrate")]
    return {name for row in rows for name in re.findall(r"--[a-z-]+", row)}


def flags(command) -> set[str]:
    return {opt for param in command.params for opt in param.opts if opt.startswith("--")} - {"--help"}


def test_every_compare_option_is_documented_and_every_documented_option_exists():
    documented = documented_options(None)
    actual = flags(compare)
    assert actual <= documented, actual - documented
    assert documented <= actual, documented - actual


def test_every_calibrate_option_is_documented_and_every_documented_option_exists():
    documented = documented_options("calibrate")
    actual = flags(calibrate_command)
    assert actual <= documented, actual - documented
    assert documented <= actual, documented - actual


# --- the demo's output and screenshot (fixtures/make_demo_docs.py writes them from one run) ---

SAMPLE = ROOT / "docs" / "img" / "demo-report.json"
# a number, with its sign and unit, standing alone ("+404.4%", "9.1 us", "<1e-4", "(98.48%)"),
# not one inside a name ("latency.p50", "f00..f15", "float32")
NUMBER = re.compile(r"(?<![\w.])[-+<]?\d[\d.,]*(?:e[-+]?\d+)?(?:\s?(?:ns|us|ms|s|B|KiB|MiB|GiB|[kMG]?/s|%))?(?![\w.])")


def demo_builder():
    return load_script(ROOT / "fixtures" / "make_demo_docs.py")


def readme_demo_block() -> str:
    return demo_builder().BLOCK.search(README).group(2)


def skeleton(text: str) -> list[str]:
    """The text's lines with every number masked and runs of spaces as one: what a run
    cannot change (columns, metric rows, notes, sections), without what it does."""
    return [" ".join(NUMBER.sub("#", line).split()) for line in text.splitlines()]


def test_skeleton_masks_numbers_and_keeps_names():
    assert skeleton("latency.p50   batch 1   9.1 us  +404.4%  <1e-4  f00..f15 float32 CI (98.48%)") == [
        "latency.p50 batch # # # # f00..f15 float32 CI (#)"]  # fmt: skip


def saved_demo_report():
    from perfgate.report.json import loads

    return loads(SAMPLE.read_text())


def test_the_readme_demo_output_has_the_structure_the_text_report_has_now():
    from perfgate.report.text import render_text

    block = readme_demo_block()
    assert block.startswith("perfgate: reference fixtures/mlp_reference.onnx vs candidate fixtures/mlp_slow.onnx\n")
    assert skeleton(block) == skeleton(render_text(saved_demo_report()))  # else: python fixtures/make_demo_docs.py --no-run


def test_the_saved_demo_report_has_the_checks_and_first_look_the_code_has_now(tmp_path):
    """The demo's options on fake models give the checks the saved run has; its run looked
    no sooner than the runner's first look (the README once showed 3 block pairs, after the
    runner had moved to 8)."""
    from fakes import FakeClock, in_process_factory
    from perfgate.config import CompareConfig
    from perfgate.engine.pipeline import run_comparison
    from perfgate.report.summary import place
    from perfgate.engine.runner import MeasurementPlan
    from perfgate.tensors import TensorSpec

    saved = saved_demo_report()
    clock = FakeClock()
    config = CompareConfig.from_options("reference.fake", "candidate.fake", str(ROOT / "fixtures" / "features.parquet"),
                                        inputs={"x": "f*"}, reference_backend="fakes:FakeBackend",
                                        candidate_backend="fakes:FakeBackend")  # fmt: skip
    latencies = {"reference": lambda rng, clock, feed: 10_000 * rng.lognormal(0, 0.05),
                 "candidate": lambda rng, clock, feed: 50_000 * rng.lognormal(0, 0.05)}  # fmt: skip
    factory = in_process_factory(clock, latencies, inputs=(TensorSpec("x", "float32", (None, 16)),))
    fresh = run_comparison(config, worker_factory=factory, clock=clock.seconds)

    def checks(report):
        return [(str(check.metric), place(check), check.budget) for check in report.checks]

    assert checks(saved) == checks(fresh)  # else: python fixtures/make_demo_docs.py
    first_look = MeasurementPlan(batch_sizes=(1,)).first_look_pairs
    assert all(series.pairs >= first_look for series in saved.series)
    assert saved.reference.path == "fixtures/mlp_reference.onnx" and saved.candidate.path == "fixtures/mlp_slow.onnx"


def test_the_demo_docs_script_runs_the_demo_scripts_failing_gate():
    demo = (ROOT / "fixtures" / "demo.sh").read_text()
    assert "gate fixtures/mlp_reference.onnx fixtures/mlp_slow.onnx" in demo
    assert "--data fixtures/features.parquet --input 'features=f*'" in demo
    gate = demo_builder().GATE
    assert gate == ["--reference", "fixtures/mlp_reference.onnx", "--candidate", "fixtures/mlp_slow.onnx",
                    "--data", "fixtures/features.parquet", "--input", "features=f*"]  # fmt: skip
    assert "python fixtures/make_demo_docs.py" in (ROOT / "docs" / "development.md").read_text()


def test_the_screenshot_shows_the_page_the_html_report_draws_now():
    from perfgate.report.html import render_html

    builder = demo_builder()
    shot = (ROOT / "docs" / "img" / "report.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    recorded = builder.png_text(shot)
    assert recorded is not None, "docs/img/report.png was not made by fixtures/make_demo_docs.py"
    drawn = builder.page_structure(render_html(saved_demo_report()))
    assert "detectable" in drawn["columns"] and "Checks" in drawn["sections"]
    assert json.loads(recorded) == drawn  # else: python fixtures/make_demo_docs.py --no-run


def test_a_png_text_chunk_is_written_and_read_back():
    builder = demo_builder()
    import zlib

    header = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + bytes(13) + zlib.crc32(b"IHDR" + bytes(13)).to_bytes(4, "big")
    end = (0).to_bytes(4, "big") + b"IEND" + zlib.crc32(b"IEND").to_bytes(4, "big")
    written = builder.with_text(header + end, '{"columns": ["detectable"]}')
    assert builder.png_text(written) == '{"columns": ["detectable"]}' and builder.png_text(header + end) is None
    chunk = written[33:]
    length = int.from_bytes(chunk[:4], "big")
    assert zlib.crc32(chunk[4 : 8 + length]).to_bytes(4, "big") == chunk[8 + length : 12 + length]  # a valid chunk
