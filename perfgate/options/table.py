"""Every option of every command, declared once (see perfgate/options/model.py).

The order is the order of each command's --help. An option with a ``key`` is also a
config-file key (and compare's, read by ``CompareConfig.from_options``); one with an
``action_input`` is also an input of the GitHub Action, and one with a ``pytest_option``
an option (and ini key) of the pytest plugin. Values are checked where the API checks
them (``config.check_common_options``, ``CompareConfig``), whichever face they came
through, so that every face says the same about them.
"""

from __future__ import annotations

from perfgate.options.model import Option

COMPARE, RUN, CALIBRATE, REPORT, MERGE = (frozenset({c}) for c in ("compare", "run", "calibrate", "report", "merge"))
MEASURING = frozenset({"compare", "run", "calibrate"})


def _report_formats() -> tuple[str, ...]:
    from perfgate.report import FORMATS  # the renderers: imported when a command is built, not with the table

    return FORMATS


_PATH = {"minLength": 1}
_LOAD_ITEMS = {"items": {"minimum": 1}}

OPTIONS: tuple[Option, ...] = (
    Option("reference", ("--reference", "--reference-path", "-r"), metavar="MODEL",
           help="The model to compare against (e.g. main's build): a model file, a SavedModel, a directory holding one model file, "
           "a generative model's directory, or an http(s):// endpoint (URL#NAME for one served model). "
           "Without the three model options, the config file's comparisons run.",
           key="reference", kind="path", key_help="The model to compare against (say, main's build): a model file, a SavedModel, "
           "or a directory holding one model file; relative to this file.",
           action_input="reference", action_help="The model to compare against (say, main's build), as a path in the workspace; "
           "required unless merge is given or a config file names it (then its comparisons run)."),
    Option("candidate", ("--candidate", "--model-path", "-c"), metavar="MODEL", help="The model under test (as --reference).",
           key="candidate", kind="path", key_help="The model under test, as reference.", baseline="candidate",
           action_input="candidate", action_help="The model under test (the pull request's build), as a path in the workspace; "
           "required unless merge is given or a config file names it (then its comparisons run)."),
    Option("model", ("--model", "-m"), commands=RUN | CALIBRATE, metavar="MODEL", required=True, stands_for=("reference", "candidate"),
           help="The model to measure, as compare's --candidate.",
           variants={"calibrate": {"help": "The model to measure against itself (as compare's --candidate)."}}),
    Option("data", ("--data", "--dataset", "-d"), commands=MEASURING, metavar="PARQUET",
           help="Parquet file whose rows feed both models: a path or a URI (s3://bucket/key.parquet, gs://, hdfs://).",
           key="data", kind="path", key_help="The Parquet file whose rows feed both models; relative to this file.", baseline="data",
           action_input="data", action_help="The Parquet file whose rows feed both models; required unless merge is given or a "
           "config file names it (then its comparisons run).",
           variants={"run": {"help": "Parquet file whose rows feed it.", "required": True},
                     "calibrate": {"help": "Parquet file whose rows feed the model.", "required": True}}),
    Option("config_path", ("--config",), metavar="PATH",
           help="Config file (default: perfgate.toml here, else pyproject.toml's [tool.perfgate]); flags override it.",
           action_input="config", action_help="The config file, relative to working-directory; empty finds perfgate.toml, else "
           "pyproject.toml's [tool.perfgate], there. Its comparisons run when reference, candidate and data are not all given.",
           pytest_option="config", pytest_help="config file for perfgate.compare_configured (default: perfgate.toml, else "
           "pyproject.toml's [tool.perfgate], in the rootdir)"),
    Option("only", ("--only",), multiple=True, metavar="NAME", help="Run only this comparison of the config file; repeatable.",
           action_input="only", action_split="words", action_help="Run only these comparisons of the config file, names separated "
           "by spaces, commas or lines (empty runs them all)."),
    Option("reference_data", ("--reference-data",), metavar="PARQUET",
           help="Data drift: the reference's own rows instead of --data's; with --candidate-data the report compares the data, not the models.",
           key="reference-data", kind="path", key_help="Data drift: the reference's own Parquet file (a path relative to this file, "
           "or a URI); the report then compares the data, not the models."),
    Option("candidate_data", ("--candidate-data",), metavar="PARQUET", help="As --reference-data, for the candidate.",
           key="candidate-data", kind="path", key_help="Data drift: the candidate's own Parquet file, as reference-data."),
    Option("baseline", ("--baseline",), metavar="PATH", baseline="baseline_path",
           help="Compare the candidate against a stored baseline (perfgate run --save) instead of a --reference; "
           "weaker than a same-run comparison."),
    Option("allow_env_mismatch", ("--allow-env-mismatch",), is_flag=True, baseline="allow_env_mismatch",
           help="With --baseline: compare even where the environment differs from the baseline's."),
    Option("inputs", ("--input",), commands=MEASURING, multiple=True, metavar="[NAME=]COLS", baseline="inputs",
           help="Feed model input NAME from COLS: a comma list of columns or globs ('features=f*'); COLS alone "
           "feeds a model's only input. Inputs without one take the column of their own name.",
           key="inputs", kind="inputs", key_help="Which columns feed which model input: [\"features=f*\"] or {features = \"f*\"} (--input).",
           action_input="inputs", action_split="lines", action_help="Which columns feed which model input, one NAME=COLS a line "
           "(features=f*); inputs without one take the column of their own name.",
           variants={"run calibrate": {"help": "As compare's --input."}}),
    Option("reference_inputs", ("--reference-input",), multiple=True, metavar="[NAME=]COLS",
           help="As --input, for the reference model only (where the two models name their inputs differently).",
           key="reference-inputs", kind="inputs", key_help="As inputs, for the reference model only (--reference-input)."),
    Option("candidate_inputs", ("--candidate-input",), multiple=True, metavar="[NAME=]COLS", baseline="inputs",
           help="As --reference-input, for the candidate.",
           key="candidate-inputs", kind="inputs", key_help="As inputs, for the candidate model only (--candidate-input)."),
    Option("task", ("--task",), choices=("infer", "generate"), metavar="TASK", commands=COMPARE | CALIBRATE,
           help="infer (one call per batch) or generate (a generative model's requests: time to first token, inter-token "
           "latency); default: generate where both models are generative (a Hugging Face causal LM directory, an ONNX Runtime "
           "GenAI folder, an http(s):// endpoint), else infer.",
           key="task", kind="string", key_schema={"enum": ["infer", "generate"]},
           key_help="infer or generate (default: generate where both models are generative, else infer).",
           action_input="task", action_help="infer or generate (left empty, told from the models: generate for causal LM "
           "directories, ONNX Runtime GenAI folders and http(s):// endpoints)."),
    Option("prompt_column", ("--prompt-column",), metavar="COL", default="prompt", show_default=True, commands=COMPARE | CALIBRATE,
           help="Generate mode: the column of prompts, strings (tokenized by each model's own tokenizer) or lists of token ids.",
           key="prompt-column", kind="string", key_help="Generate mode: the column of prompts, strings or lists of token ids.",
           action_input="prompt-column", action_help="Generate mode: the column of prompts (left empty, prompt)."),
    Option("max_new_tokens", ("--max-new-tokens",), type=int, minimum=1, default=64, show_default=True, metavar="N", commands=COMPARE | CALIBRATE,
           help="Generate mode: new tokens per request, greedily, the same number for both models.",
           key="max-new-tokens", kind="int", key_schema={"minimum": 1},
           key_help="Generate mode: new tokens per request, greedily, the same number for both models.",
           action_input="max-new-tokens", action_help="Generate mode: new tokens per request (left empty, 64)."),
    Option("chat", ("--chat",), is_flag=True, commands=COMPARE | CALIBRATE,
           help="Generate mode: wrap each text prompt in the model's chat template (a served model: its chat completions API).",
           key="chat", kind="bool", key_help="Generate mode: wrap each text prompt in the model's chat template."),
    Option("reference_headers", ("--reference-header",), multiple=True, metavar="'NAME: VALUE'",
           help="An HTTP header for the reference endpoint; ${VAR} takes an environment variable (a secret: never shown); repeatable.",
           key="reference-headers", kind="strings",
           key_help="HTTP headers for the reference endpoint, 'Name: value'; ${VAR} takes an environment variable, never shown."),
    Option("candidate_headers", ("--candidate-header",), multiple=True, metavar="'NAME: VALUE'",
           help="As --reference-header, for the candidate endpoint.",
           key="candidate-headers", kind="strings", key_help="As reference-headers, for the candidate endpoint."),
    Option("headers", ("--header",), commands=CALIBRATE, multiple=True, metavar="'NAME: VALUE'",
           stands_for=("reference_headers", "candidate_headers"),
           help="An HTTP header for the served model; ${VAR} takes an environment variable (never shown); repeatable."),
    Option("batch_sizes", ("--batch-size",), commands=MEASURING, type=int, minimum=1, multiple=True, default=(1,), show_default=True,
           help="Rows per call; repeat for several batch sizes.", baseline="batch_sizes",
           key="batch-sizes", kind="ints", key_help="Rows per call; each batch size is checked on its own (--batch-size).",
           key_schema={"items": {"minimum": 1}, "minItems": 1},
           action_input="batch-sizes", action_split="words", action_help="Batch sizes to measure, each checked on its own, "
           "separated by spaces or commas (left empty, the config file's value, else 1)."),
    Option("max_latency_increase", ("--max-latency-increase",), commands=COMPARE | CALIBRATE | REPORT, default="15%",
           show_default=True, metavar="LIMIT",
           help="Budget for latency.p50 and latency.p95 (generate mode: ttft.p50/p95, itl.p50/p95): 15%, +15% or the ratio 1.15.",
           baseline="max_latency_increase", key="max-latency-increase", kind="text-or-number",
           key_help="The budget for latency.p50 and latency.p95: \"15%\", \"+15%\" or the ratio 1.15.",
           action_input="max-latency-increase", action_help="The budget for latency.p50 and latency.p95, such as 15% or the ratio "
           "1.15 (left empty, the config file's value, else 15%).",
           variants={"calibrate": {"help": "The latency budget to hold the detectable change against."},
                     "report": {"default": None, "show_default": False,
                                "help": "Judge again with the default budgets at this limit instead of the report's own."}}),
    Option("budgets", ("--budget",), commands=COMPARE | CALIBRATE | REPORT, multiple=True, metavar="METRIC:LIMIT", baseline="budgets",
           help="Add or override a budget, e.g. latency.p95:+10%, throughput:-10%, memory.peak_rss:+10%, "
           "cold_start:+50%, load.p99:+20%, outputs.cosine:>=0.99.",
           key="budgets", kind="strings", key_help="More budgets, METRIC:LIMIT (\"latency.p99:+25%\"); a comparison's replace the "
           "defaults' for the same metric (--budget).",
           action_input="budgets", action_split="words", action_help="More budgets, METRIC:LIMIT, separated by spaces, commas or "
           "lines (latency.p99:+25% throughput:-10%).",
           variants={"calibrate": {"help": "Calibrate this metric too, against this budget (as compare's)."},
                     "report": {"help": "Judge the saved samples again with this budget (replaces the report's budget for that "
                                "metric, or adds one)."}}),
    Option("time_budget_s", ("--time-budget",), commands=MEASURING, type=float, default=60.0, show_default=True, metavar="SECONDS",
           help="Longest time to measure before an undecided check is inconclusive.", baseline="time_budget_s",
           key="time-budget", kind="number", key_help="Longest time to measure, in seconds, before an undecided check is inconclusive.",
           key_schema={"exclusiveMinimum": 0},
           action_input="time-budget", action_help="Longest time to measure, in seconds, before an undecided check is inconclusive "
           "(left empty, the config file's value, else 60).",
           # a test's measurement, not a gate's: 10 s keeps a suite of them short
           pytest_option="time_budget", pytest_help="seconds of measuring per measure or compare call, at most (default 10)",
           pytest_default="10",
           variants={"run": {"help": "Longest time to measure, shared between the batch sizes."},
                     "calibrate": {"help": "How long to measure: the time budget compare would have."}}),
    Option("call_timeout_s", ("--call-timeout",), commands=MEASURING, baseline="call_timeout_s", type=float, default=60.0, show_default=True, metavar="SECONDS",
           help="A model whose first call takes longer, or any later step 50x its expected time plus this, is taken to hang; "
           "starting and loading may take 10x this. At least 0.001.",
           key="call-timeout", kind="number", key_help="Seconds after which a model's first call is taken to hang.",
           key_schema={"exclusiveMinimum": 0}),
    Option("seed", ("--seed",), commands=MEASURING, type=int, default=0, show_default=True, baseline="seed",
           help="Seed for row sampling, block order and the bootstrap.", key="seed", kind="int", key_schema={"minimum": 0},
           variants={"run": {"help": "Seed for row sampling."}}),
    Option("threads", ("--threads",), commands=MEASURING, type=int, minimum=1, default=1, show_default=True, baseline="threads",
           help="Intra-op threads, equal for both models.", key="threads", kind="int", key_schema={"minimum": 1},
           pytest_option="threads", pytest_help="threads per model (default 1)",
           variants={"run calibrate": {"help": "Intra-op threads."}}),
    Option("rows", ("--rows",), commands=MEASURING, type=int, minimum=1, baseline="rows",
           help="Use N rows drawn at random (with --seed) instead of all.", key="rows", kind="int",
           key_help="Use this many rows drawn at random (with seed) instead of all.", key_schema={"minimum": 1}),
    Option("pad_value", ("--pad-value",), commands=COMPARE | RUN, type=float, default=0.0, show_default=True, baseline="pad_value",
           help="Padding for variable-length list columns.", key="pad-value", kind="number"),
    Option("allow_nonfinite", ("--allow-nonfinite",), is_flag=True,
           help="Time NaN and infinite feature values instead of refusing the data.", key="allow-nonfinite", kind="bool"),
    Option("confidence", ("--confidence",), commands=COMPARE | CALIBRATE, type=float, default=0.95, show_default=True,
           help="1 - the gate's total false-pass/false-fail rate over all checks and looks.", baseline="confidence",
           key="confidence", kind="number", key_help="1 - the gate's total error rate over all checks and looks.",
           key_schema={"minimum": 0.5, "exclusiveMaximum": 1},
           variants={"calibrate": {"help": "As compare's --confidence."}}),
    Option("device", ("--device",), commands=MEASURING, default="cpu", show_default=True, metavar="DEVICE", baseline="device",
           help="cpu, cuda or cuda:N, for both models; never falls back to the CPU.",
           key="device", kind="string", key_help="cpu, cuda or cuda:N, for both models.", key_schema={"pattern": "^(cpu|cuda(:[0-9]+)?)$"},
           action_input="device", action_help="cpu, cuda or cuda:N, for both models (left empty, the config file's value, else cpu).",
           pytest_option="device", pytest_help="cpu, cuda or cuda:N (default cpu)",
           variants={"run calibrate": {"help": "cpu, cuda or cuda:N."}}),
    Option("include_transfers", ("--include-transfers",), is_flag=True,
           help="On a GPU, time the host-to-device input copies and device-to-host output copies too.",
           key="include-transfers", kind="bool", key_help="On a GPU, time the host-to-device and device-to-host copies too."),
    Option("signature", ("--signature",), metavar="NAME", help="SavedModel/TFLite signature (default: serving_default).",
           key="signature", kind="string"),
    Option("cold_starts", ("--cold-starts",), type=int, minimum=0, metavar="K",
           help="Fresh worker starts per model beyond the measuring worker's own, each timed from process start to "
           "the first inference's end (default: 3 with a cold_start budget, else 0).",
           key="cold-starts", kind="int", key_help="Fresh worker starts per model, timed to the first inference's end (0: none).",
           key_schema={"minimum": 0}),
    Option("instances", ("--instances",), type=int, minimum=1, maximum=8, metavar="K",
           help="Worker processes per model, block pairs taking turns (default: 4 for a budget within 10% of no change, else 1).",
           key="instances", kind="int", key_help="Worker processes per model (default: 4 for a budget within 10% of no change, else 1).",
           key_schema={"minimum": 1, "maximum": 8}),
    Option("concurrency", ("--concurrency",), type=int, minimum=1, multiple=True, metavar="N",
           help="Latency under load: N clients in a closed loop; repeatable.", key="concurrency", kind="ints",
           key_help="Latency under load: N clients in a closed loop, one scenario per number (--concurrency).", key_schema=_LOAD_ITEMS),
    Option("rates", ("--rate",), type=float, minimum=0, min_open=True, multiple=True, metavar="QPS",
           help="Latency under load: Poisson arrivals at QPS requests per second; repeatable.", key="rates", kind="numbers",
           key_help="Latency under load: Poisson arrivals at this many requests per second, one scenario per rate (--rate).",
           key_schema={"items": {"exclusiveMinimum": 0}}),
    Option("size_column", ("--size-column",), metavar="COL", help="Latency against input size: a column such as a token count.",
           key="size-column", kind="string"),
    Option("memory_floor", ("--memory-floor",), default="5MiB", show_default=True, metavar="SIZE",
           help="Memory changes smaller than this never fail a memory budget.", key="memory-floor", kind="text-or-number",
           key_help="Memory changes smaller than this never fail a memory budget (\"5MiB\", or bytes)."),
    Option("output_rows", ("--output-rows",), type=int, minimum=0, default=256, show_default=True, metavar="N",
           help="Compare both models' outputs on N rows of the first batch size, untimed (0: do not).",
           key="output-rows", kind="int", key_help="Compare both models' outputs on this many rows, untimed (0: do not).",
           key_schema={"minimum": 0}),
    Option("reference_backend", ("--reference-backend",), metavar="NAME",
           help="onnxruntime, torch, tensorflow, tflite, transformers, onnxruntime-genai, openai or package.module:Class "
           "(default: from the path).",
           key="reference-backend", kind="string"),
    Option("candidate_backend", ("--candidate-backend",), metavar="NAME", help="As --reference-backend, for the candidate.",
           baseline="backend", key="candidate-backend", kind="string", key_help="As reference-backend, for the candidate."),
    Option("backend", ("--backend",), commands=RUN | CALIBRATE, metavar="NAME", stands_for=("reference_backend", "candidate_backend"),
           help="As compare's --candidate-backend.",
           variants={"calibrate": {"help": "onnxruntime, torch, tensorflow, tflite or package.module:Class (default: from the path)."}}),
    Option("reference_python", ("--reference-python",), metavar="PATH",
           help="Run the reference's worker with this Python (another virtual environment's bin/python, other framework versions).",
           # a command on PATH or a path: not made relative to the file, so a "string", not a "path"
           key="reference-python", kind="string", key_schema=_PATH,
           key_help="Another environment's Python interpreter runs the reference's worker (dependency drift)."),
    Option("candidate_python", ("--candidate-python",), metavar="PATH", help="As --reference-python, for the candidate.",
           key="candidate-python", kind="string", key_schema=_PATH,
           key_help="Another environment's Python interpreter runs the candidate's worker."),
    Option("output", ("--output", "-o"), commands=MERGE, metavar="PATH", report="json", face=True,
           help="Write the merged report as JSON here."),
    Option("json_path", ("--json",), commands=COMPARE | CALIBRATE, metavar="PATH", report="json", face=True,
           help="Also write the full report as JSON here.", variants={"calibrate": {"help": "Also write the calibration as JSON here."}},
           pytest_option="json", pytest_help="write every measurement of the session to this JSON file"),
    Option("fmt", ("--format",), commands=COMPARE | CALIBRATE | REPORT | MERGE, choices=_report_formats, default="text",
           show_default=True, face=True, help="Report format on stdout.",
           variants={"calibrate": {"choices": ("text", "json"), "help": "Output format on stdout."}, "report": {"help": None}}),
    Option("markdown_path", ("--markdown",), commands=COMPARE | MERGE, metavar="PATH", report="markdown", face=True,
           help="Also write the report as Markdown (a job summary, a PR comment).",
           variants={"merge": {"help": "Also write the merged report as Markdown."}}),
    Option("junit_path", ("--junit",), commands=COMPARE | MERGE, metavar="PATH", report="junit", face=True,
           help="Also write the report as JUnit XML, one test case per gated check.",
           variants={"merge": {"help": "Also write it as JUnit XML, one test suite per part."}}),
    Option("html_path", ("--html",), commands=COMPARE | MERGE, metavar="PATH", report="html", face=True,
           help="Also write the report as a self-contained HTML page with charts.",
           variants={"merge": {"help": "Also write it as a self-contained HTML page."}}),
    Option("save_path", ("--save",), commands=RUN, metavar="PATH",
           help="Store the samples and the environment's fingerprint here, a baseline for compare --baseline."),
    Option("fail_on_inconclusive", ("--fail-on-inconclusive",), commands=COMPARE | REPORT | MERGE, is_flag=True, face=True,
           help="Exit 4 instead of 0 when the result is inconclusive.",
           action_input="fail-on-inconclusive", action_help="Fail the step (exit 4) when the result is inconclusive, instead of "
           "passing with a warning.",
           pytest_option="strict", pytest_help="fail a test whose budget is inconclusive (default: pass with a warning)",
           variants={"report": {"help": "Exit 4 instead of 0 when the verdict is inconclusive."},
                     "merge": {"help": "Exit 4 instead of 0 when the merged verdict is inconclusive."}}),
    Option("quiet", ("--quiet", "-q"), commands=MEASURING, is_flag=True, face=True, help="No progress lines on stderr."),
    Option("debug", ("--debug",), commands=frozenset({"compare", "run", "calibrate", "report", "merge"}), is_flag=True, face=True,
           help="Show tracebacks and worker logs on errors.", variants={"report merge": {"help": "Show tracebacks on errors."}}),
)
