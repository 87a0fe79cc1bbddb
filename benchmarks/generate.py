"""Generate mode: time to verdict all in, through served models, A/A, and the harness's cost per token.

Parts (each run `--runs` times, one after the other, nothing else started by this script):

* verdict: `perfgate compare` from the shell to its exit on fixtures/llm/tiny_llama_shallow
           (2 layers) against tiny_llama_deep (16 layers, about 3.9x the time per token);
* served:  the same two models behind two `transformers serve` processes on loopback,
           compared by URL (`http://127.0.0.1:P/v1`); the servers' start is not counted;
* aa:      the shallow model against a byte copy of its folder: it must pass;
* overhead: in this process, 1 torch thread, the shallow model's own `generate` with exactly
           N new tokens, bare, against perfgate's TransformersLMBackend.generate_timed (the
           same call plus the stamping streamer), in pairs in ABBA order on the same
           prompt: per-token time of each (wall, and this thread's CPU time) and the ratio.

Each compare prints its verdict, exit code and wall seconds, and where those seconds went,
read from the progress lines' arrival times on stderr: start to "loading models" (process
start, imports), loading (workers, models, prompts handed), warm-up, measuring (to the
last look; the greedy answers are compared from the measured pairs), then the report and
exit. Every
command is printed as it was run. Run it alone: other load lengthens every number.

    python benchmarks/generate.py [--runs 5] [--parts verdict,served,aa,overhead] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHALLOW, DEEP = FIXTURES / "llm" / "tiny_llama_shallow", FIXTURES / "llm" / "tiny_llama_deep"
PROMPTS = FIXTURES / "prompts.parquet"
TARGETS = {"verdict": ("fail", 15.0), "served": ("fail", 20.0), "aa": ("pass", 20.0)}
# progress lines on stderr that open a phase (the first line that contains the marker)
PHASES = (
    ("perfgate: loading models", "start, imports"),
    ("measuring for up to", "loading"),
    ("perfgate: warm-up:", "warm-up"),
)
LOOK = "perfgate: look "


@dataclass
class Run:
    verdict: str
    code: int
    seconds: float
    phases: list[tuple[str, float]] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    error: str = ""


def gate(reference: str, candidate: str, max_new_tokens: int, data: Path = PROMPTS) -> tuple[list[str], Run]:
    """One `perfgate compare` as a user runs it; the progress lines are stamped as they arrive."""
    with tempfile.TemporaryDirectory() as out:
        report = Path(out) / "report.json"
        command = [sys.executable, "-m", "perfgate", "compare", "-r", reference, "-c", candidate, "-d", str(data),
                   "--max-new-tokens", str(max_new_tokens), "--json", str(report)]  # fmt: skip
        stamps: list[tuple[float, str]] = []
        with open(Path(out) / "stdout.txt", "wb") as stdout:
            began = time.perf_counter()
            process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            for line in process.stderr:
                stamps.append((time.perf_counter() - began, line.rstrip("\n")))
            process.wait()
            seconds = time.perf_counter() - began
        found = json.loads(report.read_text()) if report.exists() else {}
        errors = [text for _, text in stamps if text.startswith("perfgate: error:")]
        run = Run(found.get("verdict", "none"), process.returncode, seconds, _phases(stamps, seconds), found,
                  errors[-1] if errors else "")  # fmt: skip
        return command, run


def _phases(stamps: list[tuple[float, str]], seconds: float) -> list[tuple[str, float]]:
    opened: list[tuple[str, float]] = []
    for marker, name in PHASES:
        at = next((when for when, text in stamps if marker in text), None)
        if at is not None:
            opened.append((name, at))
    looks = [when for when, text in stamps if text.startswith(LOOK)]
    if looks:
        opened.append(("measuring", looks[-1]))
    opened.append(("report, exit", seconds))
    phases, previous = [], 0.0
    for name, at in opened:
        phases.append((name, at - previous))
        previous = at
    return phases


def shown(command: list[str]) -> str:
    return shlex.join(["python" if part == sys.executable else os.path.relpath(part, ROOT) if part.startswith(str(ROOT)) else part
                       for part in command])  # fmt: skip


def checks_line(report: dict) -> str:
    """Each check's verdict and interval: what decided, and what stayed inconclusive and why."""
    parts = []
    for check in report.get("checks", []):
        if check["verdict"] == "info":
            continue
        if check.get("ci"):
            low, high = (100 * (bound - 1) for bound in check["ci"])
            parts.append(f"{check['metric']} {check['verdict']} [{low:+.1f}%, {high:+.1f}%]")
        else:
            parts.append(f"{check['metric']} {check['verdict']} ({check.get('reason', '')})")
    run = report.get("run") or {}
    counts = {check.get("n_reference") for check in report.get("checks", []) if check["metric"].startswith("ttft.")}
    looks = (f"{run.get('looks')} look(s), {', '.join(map(str, counts - {None})) or '?'} requests per model, "
             f"{run.get('measure_seconds', 0):.1f} s measuring, stopped: {run.get('stopped_because')}")  # fmt: skip
    return looks + "\n      " + "; ".join(parts)


def compare_part(name: str, reference: str, candidate: str, args: argparse.Namespace, note: str = "", data: Path = PROMPTS) -> tuple:
    command = None
    runs = []
    for index in range(1, args.runs + 1):
        command, run = gate(reference, candidate, args.max_new_tokens, data)
        runs.append(run)
        phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in run.phases)
        print(f"  {name:8} run {index}: {run.verdict:12} exit {run.code}  {run.seconds:6.2f} s  ({phases})", flush=True)
        if run.error:
            print(f"      {run.error}")
        sides = (run.report.get("compared") or {}).values()
        setup = [side.get("setup_seconds") for side in sides if isinstance(side, dict) and side.get("setup_seconds")]
        loads = [side.get("load_seconds") for side in sides if isinstance(side, dict) and side.get("load_seconds")]
        if setup and loads:  # the two workers start at once: loading is the slower one's
            print(f"      workers (reference, candidate): framework import {' / '.join(f'{s:.1f}' for s in setup)} s, "
                  f"model load {' / '.join(f'{s:.1f}' for s in loads)} s")  # fmt: skip
        if name == "aa" or args.details:
            print(f"      {checks_line(run.report)}")
    print(f"  command: {shown(command)}{note}")
    wanted, target = TARGETS[name]
    seconds = [run.seconds for run in runs]
    right = sum(run.verdict == wanted for run in runs)
    return name, right, len(runs), statistics.median(seconds), max(seconds), wanted, target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(model: Path, log: Path) -> tuple[subprocess.Popen, str, list[str]]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [str(Path(sys.executable).parent / "transformers"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu", str(model)]  # fmt: skip
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    return server, f"http://127.0.0.1:{port}", command


def wait_ready(servers: list[tuple[subprocess.Popen, str, list[str]]], logs: list[Path], limit_s: float = 300) -> float:
    """Ready once GET /health answers: the forced model is loaded before uvicorn listens."""
    import httpx

    began = time.monotonic()
    waiting = list(range(len(servers)))
    while waiting:
        for index in list(waiting):
            server, url, _ = servers[index]
            if server.poll() is not None:
                raise SystemExit(f"transformers serve exited {server.returncode}: {logs[index].read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    waiting.remove(index)
            except httpx.HTTPError:
                pass
        if time.monotonic() - began > limit_s:
            raise SystemExit(f"transformers serve was not ready within {limit_s:g} s")
        time.sleep(0.1)
    return time.monotonic() - began


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGINT)  # its clean stop
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def streamed_prompts(urls: list[str], models: tuple[Path, ...], max_new_tokens: int, work: Path) -> Path:
    """The prompts whose greedy answer both servers stream as text (untimed, one request each).

    `transformers serve` holds back a byte-level token that ends inside a UTF-8 character
    until the character is complete; the deep fixture's random weights answer 8 of the 28
    prompts with 64 such bytes (e.g. token 257, 'ł', 64 times), so those streams carry no
    text at all, only usage's 64 tokens, and perfgate stops with "gave no new token"."""
    import httpx
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = pq.read_table(PROMPTS, columns=["prompt"]).column(0).to_pylist()
    kept, dropped = [], []
    for index, text in enumerate(texts):
        chunks = []
        for url, model in zip(urls, models):
            body = {"model": str(model), "prompt": text, "max_tokens": max_new_tokens, "temperature": 0, "stream": True,
                    "generation_config": json.dumps({"min_new_tokens": max_new_tokens})}  # fmt: skip
            with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as response:
                events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: {")]
            chunks.append(sum(bool(choice.get("text")) for event in events for choice in event.get("choices", [])))
        (kept if all(chunks) else dropped).append(index)
    path = work / "streamed_prompts.parquet"
    pq.write_table(pa.table({"prompt": [texts[index] for index in kept]}), path)
    print(f"  prompts: {len(kept)} of {len(texts)} of {os.path.relpath(PROMPTS, ROOT)}; left out (a server streamed no text "
          f"for them, only bytes of unfinished characters): {dropped}", flush=True)  # fmt: skip
    return path


def served_part(args: argparse.Namespace, work: Path) -> tuple:
    logs = [work / "serve_shallow.log", work / "serve_deep.log"]
    servers = [serve(SHALLOW, logs[0]), serve(DEEP, logs[1])]
    try:
        ready = wait_ready(servers, logs)
        print(f"  both servers ready after {ready:.1f} s (started together; not counted below); each: "
              f"OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 {shown(servers[0][2])}", flush=True)  # fmt: skip
        prompts = streamed_prompts([url for _, url, _ in servers], (SHALLOW, DEEP), args.max_new_tokens, work)
        return compare_part("served", f"{servers[0][1]}/v1", f"{servers[1][1]}/v1", args, data=prompts)
    finally:
        for server, _, _ in servers:
            stop(server)


def overhead_part(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    import pyarrow.parquet as pq
    import torch

    from perfgate.backends.base import BackendOptions
    from perfgate.backends.transformers_lm import TransformersLMBackend

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its loading bar on stderr is no part of the output
    backend = TransformersLMBackend(BackendOptions(threads=1))
    backend.setup()  # torch threads 1, as perfgate's workers set them
    backend.load(str(args.overhead_model))  # inference mode from here on, for both ways
    model, n = backend._model, args.max_new_tokens
    pad = backend._pad_token_id
    prompts = [backend.prepare_prompt(text) for text in pq.read_table(PROMPTS, columns=["prompt"]).column(0).to_pylist()]
    masks = [torch.ones_like(ids) for ids in prompts]
    clock = time.perf_counter_ns

    def bare(index: int) -> tuple[int, int]:
        ids, mask = prompts[index], masks[index]
        wall, cpu = clock(), time.thread_time_ns()
        output = model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                pad_token_id=pad)  # fmt: skip
        cpu, wall = time.thread_time_ns() - cpu, clock() - wall
        assert output.shape[1] - ids.shape[1] == n
        return wall, cpu

    def perfgate(index: int) -> tuple[int, int]:
        wall, cpu = clock(), time.thread_time_ns()
        generation = backend.generate_timed(prompts[index], n, clock)
        cpu, wall = time.thread_time_ns() - cpu, clock() - wall
        assert len(generation.output_ids) == len(generation.token_ns) == n
        return wall, cpu

    for index in range(min(4, len(prompts))):  # warm-up, untimed
        bare(index), perfgate(index)
    ratios_wall, ratios_cpu, per_token = [], [], {"bare": [], "perfgate": []}
    for pair in range(args.overhead_pairs):
        index = pair % len(prompts)
        order = (bare, perfgate) if pair % 4 in (0, 3) else (perfgate, bare)  # ABBA
        found = {way.__name__: way(index) for way in order}
        for way, (wall, cpu) in found.items():
            per_token[way].append((wall / n, cpu / n))
        ratios_wall.append(found["perfgate"][0] / found["bare"][0])
        ratios_cpu.append(found["perfgate"][1] / found["bare"][1])
    print(f"  model {os.path.relpath(args.overhead_model, ROOT)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread, {n} new tokens, {args.overhead_pairs} pairs (ABBA), 4 warm-up pairs")  # fmt: skip
    print(f"  bare:     model.generate(ids, attention_mask=ones, max_new_tokens={n}, min_new_tokens={n}, do_sample=False, "
          f"pad_token_id={pad})")  # fmt: skip
    print(f"  perfgate: TransformersLMBackend(BackendOptions(threads=1)).generate_timed(ids, {n}, time.perf_counter_ns)")
    for way, values in per_token.items():
        wall = statistics.median(value[0] for value in values) / 1e6
        cpu = statistics.median(value[1] for value in values) / 1e6
        print(f"  {way:9} per token: median {wall:.3f} ms wall, {cpu:.3f} ms thread CPU")
    for label, ratios in (("wall", ratios_wall), ("thread CPU", ratios_cpu)):
        q1, median, q3 = statistics.quantiles(ratios, n=4)
        print(f"  perfgate / bare ({label}): median {median:.4f}  quartiles {q1:.4f} .. {q3:.4f}  (target <= 1.02)")
    backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="compares per part")
    parser.add_argument("--parts", default="verdict,served,aa,overhead")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--overhead-pairs", type=int, default=40)
    parser.add_argument("--overhead-model", type=Path, default=SHALLOW)
    parser.add_argument("--details", action="store_true", help="each check's interval for every part, not only A/A")
    args = parser.parse_args()
    parts = args.parts.split(",")
    work = Path(tempfile.mkdtemp(prefix="perfgate-generate-"))
    print(f"perfgate generate mode; {args.runs} runs a part, --max-new-tokens {args.max_new_tokens}; "
          f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    summary = []
    try:
        if "verdict" in parts:
            summary.append(compare_part("verdict", str(SHALLOW), str(DEEP), args))
        if "served" in parts:
            summary.append(served_part(args, work))
        if "aa" in parts:
            copy = work / "tiny_llama_shallow_copy"
            shutil.copytree(SHALLOW, copy)
            summary.append(compare_part("aa", str(SHALLOW), str(copy), args, note="  (the copy: a byte copy in a temporary folder)"))
        if "overhead" in parts:
            print("overhead per token, in process:", flush=True)
            overhead_part(args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if summary:
        print()
        print(f"{'part':9} {'right':>7} {'median s':>9} {'max s':>7}  target")
        for name, right, count, median, worst, wanted, target in summary:
            print(f"{name:9} {right:>3}/{count:<3} {median:9.2f} {worst:7.2f}  {wanted}, <= {target:g} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
