"""Does a memory budget cry wolf? A ~90 MB ONNX sentence encoder against a byte-identical
copy of itself, N times, through the real CLI with --budget memory.peak_rss:+10% and
--budget memory.load_rss:+10%.

The model is built here (no download): a BERT-like encoder in torch, a 30,522 x 384 token
embedding and 6 encoder layers of width 384 (the shape of all-MiniLM-L6-v2, ~90 MB of
float32 weights), exported with torch.onnx.export into a cache directory outside the
repository, with a Parquet file of token ids (list<int64>, 8 to 64 tokens a row) and a
byte-identical copy of the model. Every run prints each side's load RSS and peak RSS and
the verdicts of the two memory checks; the summary gives the spread between the sides
and how many runs failed. Memory is not disturbed by other processes' CPU load.

    python benchmarks/memory_aa.py [--runs 20] [--cache ~/.cache/perfgate-memory-aa]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 2**20
VOCAB, WIDTH, LAYERS, HEADS, FFN = 30522, 384, 6, 12, 1536


def build_model(path: Path) -> None:
    import torch

    class Layer(torch.nn.Module):  # written out: torch's fused encoder layer does not export
        def __init__(self) -> None:
            super().__init__()
            self.qkv = torch.nn.Linear(WIDTH, 3 * WIDTH)
            self.out = torch.nn.Linear(WIDTH, WIDTH)
            self.up, self.down = torch.nn.Linear(WIDTH, FFN), torch.nn.Linear(FFN, WIDTH)
            self.norm1, self.norm2 = torch.nn.LayerNorm(WIDTH), torch.nn.LayerNorm(WIDTH)

        def forward(self, hidden):
            batch, tokens = hidden.shape[0], hidden.shape[1]
            q, k, v = self.qkv(hidden).view(batch, tokens, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
            weights = torch.softmax(q @ k.transpose(-1, -2) / (WIDTH // HEADS) ** 0.5, dim=-1)
            attended = (weights @ v).transpose(1, 2).reshape(batch, tokens, WIDTH)
            hidden = self.norm1(hidden + self.out(attended))
            return self.norm2(hidden + self.down(torch.nn.functional.gelu(self.up(hidden))))

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = torch.nn.Embedding(VOCAB, WIDTH)
            self.positions = torch.nn.Embedding(512, WIDTH)
            self.norm = torch.nn.LayerNorm(WIDTH)
            self.layers = torch.nn.Sequential(*(Layer() for _ in range(LAYERS)))

        def forward(self, input_ids):
            positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
            hidden = self.layers(self.norm(self.tokens(input_ids) + self.positions(positions)))
            return hidden.mean(dim=1)  # a sentence embedding: mean pooling

    torch.manual_seed(0)
    model = Encoder().eval()
    example = torch.randint(0, VOCAB, (2, 16), dtype=torch.int64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            model, (example,), str(path), input_names=["input_ids"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}}, opset_version=17, dynamo=False,
        )  # fmt: skip


def build_data(path: Path, rows: int = 512) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    generator = np.random.default_rng(0)
    ids = [generator.integers(1000, VOCAB, int(generator.integers(8, 65))).tolist() for _ in range(rows)]
    pq.write_table(pa.table({"input_ids": pa.array(ids, type=pa.list_(pa.int64()))}), path)


def prepare(cache: Path) -> tuple[Path, Path, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    reference, candidate, data = cache / "encoder.onnx", cache / "encoder_copy.onnx", cache / "tokens.parquet"
    if not reference.exists():
        build_model(reference)
    if not candidate.exists() or not filecmp.cmp(reference, candidate, shallow=False):
        shutil.copyfile(reference, candidate)
    if not data.exists():
        build_data(data)
    return reference, candidate, data


def run_once(reference: Path, candidate: Path, data: Path, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [
            sys.executable, "-m", "perfgate", "compare", "--reference", str(reference), "--candidate", str(candidate),
            "--data", str(data), "--budget", "memory.peak_rss:+10%", "--budget", "memory.load_rss:+10%",
            "--cold-starts", "0", "--time-budget", "5", "--json", str(report), *extra,
        ]  # fmt: skip
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if not report.exists():
            raise SystemExit(f"perfgate wrote no report (exit {finished.returncode}): {finished.stderr.strip()}")
        found = json.loads(report.read_text())
    found["exit_code"] = finished.returncode
    return found


def memory_checks(report: dict) -> dict[str, dict]:
    return {check["metric"]: check for check in report["checks"] if check["metric"].startswith("memory.")}


def readings(report: dict, side: str, key: str) -> list[float]:
    memory = report["compared"][side]["memory"]
    many = memory.get(f"{key}_instances")
    return [float(value) for value in (many or [memory[key]]) if value is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path(os.path.expanduser("~/.cache/perfgate-memory-aa")))
    parser.add_argument("extra", nargs="*", help="more `perfgate compare` options, after --")
    args = parser.parse_args()
    reference, candidate, data = prepare(args.cache)
    print(f"model {reference} ({reference.stat().st_size / MiB:.1f} MiB) against its byte-identical copy; {args.runs} runs")
    print(f"{'run':>3}  {'load ref':>15} {'load cand':>15}  {'peak ref':>15} {'peak cand':>15}  load_rss  peak_rss  exit")
    fails, spreads = 0, {"memory.load_rss": [], "memory.peak_rss": []}
    for run in range(1, args.runs + 1):
        report = run_once(reference, candidate, data, args.extra)
        checks = memory_checks(report)
        cells = []
        for key in ("load_rss", "peak_rss"):
            for side in ("reference", "candidate"):
                values = readings(report, side, key)
                cells.append("/".join(f"{value / MiB:.0f}" for value in values) + " MiB")
        verdicts = []
        for name in ("memory.load_rss", "memory.peak_rss"):
            check = checks.get(name, {})
            verdicts.append(check.get("verdict", "-"))
            if check.get("reference") and check.get("candidate"):
                spreads[name].append(check["candidate"] / check["reference"] - 1)
        fails += any(verdict == "fail" for verdict in verdicts)
        print(f"{run:>3}  {cells[0]:>15} {cells[1]:>15}  {cells[2]:>15} {cells[3]:>15}  {verdicts[0]:>8}  {verdicts[1]:>8}  {report['exit_code']:>4}", flush=True)
    for name, changes in spreads.items():
        if changes:
            print(f"{name}: candidate/reference - 1 from {min(changes):+.1%} to {max(changes):+.1%} (largest |change| {max(map(abs, changes)):.1%})")
    print(f"A/A runs failed on memory: {fails} of {args.runs} (target: 0)")
    return 0 if fails == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
