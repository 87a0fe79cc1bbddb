"""Fault injection for perfgate's command line: the contract of issue 17, case by case.

Seven classes of fault, each with several variants:

    1 data loss       a report flag (--json, --markdown, --html, --junit, --output, --save)
                      naming a file the command reads, or a special file (/dev/null, /dev/full,
                      a FIFO, /dev/stdout): exit 2 and the file unchanged, or written in place
    2 broken input    a baseline or report whose samples are zero, negative or gone, an error
                      report that claims exit 0 or 1, a report merged with itself, a negative
                      seed: refused, never passed
    3 crash → exit 1  malformed or deeply nested JSON, stdout closed, a NUL byte in a config
                      value, stderr on a full disk: exit 2 or 3, never 1, never a traceback
    4 load            a budget the run cannot resolve in its time: INCONCLUSIVE (exit 0, or 4
                      with --fail-on-inconclusive) with the samples kept, never a usage error
    5 hangs/signals   an interpreter that never answers, SIGTERM/SIGINT/SIGKILL while probing or
                      measuring, a model or data path that is a FIFO, an impossible call
                      timeout: no process left behind, 130/143 with an error report, no
                      half-written baseline, an answer within seconds
    6 valid runs      a Latin-1 file name under LC_ALL=C, a .pt2 under torch's legacy-load
                      switch, huge numbers, very long paths, a truncated model: a run or a
                      one-line error that says what is wrong (never "internal error")
    7 trips           a report in a missing folder (refused or created before measuring),
                      files that are not comparison reports (pytest --perfgate-json, a
                      baseline, a calibration) named for what they are

Each case runs ``python -m perfgate ...`` in a fresh temp folder holding copies of the
fixtures (never the fixtures themselves), and is judged on: the exit code; stderr (no
"Traceback", no "internal error"; an error is one ``perfgate: error:`` line matching the
case's pattern); files that must be unchanged (SHA-256 before/after), exist, or be absent;
no process of the run left alive afterwards. Special files (/dev/null, /dev/full,
/dev/stdout) are those of a private /dev (a mount namespace with its own device nodes), so
that a perfgate that replaces the file it was given cannot break the machine's own.

Reports to tamper with come from one short A/A comparison (and one short ``run --save``)
made once per invocation.

    python benchmarks/fault_injection.py [--fast] [--class N ...] [--list] [--keep]

Prints one line per case (PASS, WRONG with what happened, SKIP where this machine cannot
set the case up), then "class N: k of m right" per class; exits 1 if any case is wrong.
tests/test_fault_injection.py runs the --fast cases under pytest.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
PYTHON = sys.executable

# what every compare of the A/A pair here passes: short, and a budget no noise fails
QUICK = ["--input", "features=f*", "--cold-starts", "0", "--time-budget", "2", "--max-latency-increase", "100%",
         "--output-rows", "16", "-q"]  # fmt: skip
AA = ["-r", "ref.onnx", "-c", "cand.onnx", "-d", "features.parquet"]
RUN = ["--input", "features=f*", "--time-budget", "1", "-q"]  # run / calibrate, short
NOT_ONE = (2, 3)  # an error, never exit 1


class Skip(Exception):
    """The case cannot be set up on this machine (no mount namespaces, no torch)."""


# --- the workspace of one case ---------------------------------------------------------------


class Workspace:
    """A temp folder for one case, with copies of the fixtures and tampered reports."""

    def __init__(self, root: Path, cache: "Cache") -> None:
        self.dir = root
        self.cache = cache
        self.devices: dict[str, str] = {}  # private /dev: name -> file type after the run
        self.notes: list[str] = []

    def path(self, name: str | bytes) -> Path:
        return self.dir / os.fsdecode(name)

    def copy(self, source: str | Path, name: str | bytes | None = None) -> Path:
        source = Path(source) if os.path.isabs(source) else FIXTURES / source
        target = self.dir / os.fsdecode(name or source.name)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
        return target

    def aa(self) -> None:
        """The A/A pair: the reference and a byte copy of it, and the data."""
        self.copy("mlp_reference.onnx", "ref.onnx")
        self.copy("mlp_reference.onnx", "cand.onnx")
        self.copy("features.parquet")

    def write(self, name: str, text: str | bytes) -> Path:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        return target

    def report(self, name: str = "R.json", tamper: Callable[[dict], Any] | None = None) -> Path:
        """The cached A/A report, changed by ``tamper`` (which edits the dict in place)."""
        document = json.loads(self.cache.aa_report().read_text())
        if tamper is not None:
            tamper(document)
        return self.write(name, json.dumps(document).replace(json.dumps(NESTED), _nested(3000)))

    def baseline(self, name: str = "base.json", tamper: Callable[[dict], Any] | None = None) -> Path:
        """The cached baseline, naming this folder's data file, changed by ``tamper``."""
        document = json.loads(self.cache.baseline().read_text())
        document["data"]["path"] = str(self.path("features.parquet"))
        if tamper is not None:
            tamper(document)
        return self.write(name, json.dumps(document))

    def config(self, name: str = "perfgate.toml", extra: str = "", table: str = "") -> Path:
        text = (
            f"{table}"
            'reference = "ref.onnx"\ncandidate = "cand.onnx"\ndata = "features.parquet"\n'
            'inputs = ["features=f*"]\ntime-budget = 2\nmax-latency-increase = "100%"\noutput-rows = 16\n'
            f"{extra}"
        )
        return self.write(name, text)

    def fifo(self, name: str) -> Path:
        target = self.path(name)
        os.mkfifo(target)
        return target


class Cache:
    """The reports every case may start from, made once per invocation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, Path] = {}
        self._lock = threading.Lock()

    def _make(self, key: str, argv: Sequence[str], product: str) -> Path:
        with self._lock:
            if key in self._made:
                return self._made[key]
            folder = self.root / key
            folder.mkdir(parents=True, exist_ok=True)
            for name, source in (("ref.onnx", "mlp_reference.onnx"), ("cand.onnx", "mlp_reference.onnx"), ("features.parquet", "features.parquet")):
                shutil.copyfile(FIXTURES / source, folder / name)
            result = subprocess.run([PYTHON, "-m", "perfgate", *argv], cwd=folder, env=_env({}), capture_output=True, text=True, timeout=300)
            target = folder / product
            if not target.exists():
                raise RuntimeError(f"could not make {key} (exit {result.returncode}): {result.stderr.strip()[-500:]}")
            self._made[key] = target
            return target

    def aa_report(self) -> Path:
        """One short compare of the A/A pair, with its JSON report."""
        return self._make("aa", ["compare", *AA, *QUICK[:-1], "--time-budget", "3", "--json", "R.json", "-q"], "R.json")

    def baseline(self) -> Path:
        return self._make("baseline", ["run", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--save", "base.json"], "base.json")

    def calibration(self) -> Path:
        return self._make("calibration", ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--json", "cal.json"], "cal.json")


# --- a case and how it is judged -------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None  # None: timed out (killed)
    stdout: bytes
    stderr: str
    seconds: float
    leftovers: list[str] = field(default_factory=list)  # processes of the run still alive after it


@dataclass(frozen=True)
class Case:
    name: str
    cls: int
    argv: Sequence[str | bytes] | Callable[[Workspace], Sequence[str | bytes]]  # after `python -m perfgate`
    codes: tuple[int, ...]  # exit codes allowed
    error: str | None = None  # regex the one error line must match when the exit code is 2, 3 or >= 128
    setup: Callable[[Workspace], Any] = lambda ws: None
    unchanged: tuple[str, ...] = ()  # files whose bytes must not change
    exists: tuple[str, ...] = ()  # files that must exist afterwards
    absent: tuple[str, ...] = ()  # files that must not exist afterwards
    fast: bool = False  # set from FAST below
    timeout: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict)
    stdout: str = "pipe"  # "pipe", "closed"
    stderr: str = "pipe"  # "pipe", "full" (the machine's /dev/full: writes fail with ENOSPC)
    private_dev: bool = False  # run in a mount namespace with its own /dev
    during: Callable[[Workspace, subprocess.Popen], None] | None = None  # signals, a FIFO's reader
    check: Callable[[Workspace, Outcome], str | None] | None = None  # more to judge: what is wrong, or None
    quiet_stderr: bool = True  # stderr holds nothing but the error line (and warnings)
    needs: str | None = None  # a module the case needs (torch, tensorflow), else SKIP


def judge(case: Case, ws: Workspace, outcome: Outcome, hashes: Mapping[str, str | None]) -> list[str]:
    """What is wrong with the outcome (empty: right)."""
    wrong: list[str] = []
    text = outcome.stderr
    lines = [line for line in text.splitlines() if line.strip()]
    first = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    if outcome.code is None:
        wrong.append(f"still running after {case.timeout:g} s (killed)")
    elif outcome.code not in case.codes:
        shown = f"; stderr: {_short(first)}" if first else ""
        wrong.append(f"exit {outcome.code}, expected {_codes(case.codes)}{shown}")
    if "Traceback" in text:
        wrong.append("a traceback on stderr")
    if "internal error" in text:
        wrong.append(f"'internal error': {_short(first)}")
    if case.error is not None and case.stderr == "pipe" and outcome.code is not None and outcome.code not in (0, 1, 4):
        errors = [line for line in lines if not line.lower().startswith("perfgate: warning")]
        if case.quiet_stderr and len(errors) != 1:
            wrong.append(f"{len(errors)} lines on stderr, expected one: {_short(' | '.join(errors))}")
        said = [line for line in errors if line.startswith("perfgate: error:")]
        if not said:
            wrong.append("no 'perfgate: error:' line")
        elif not re.search(case.error, said[-1], re.IGNORECASE):
            wrong.append(f"error line does not match /{case.error}/: {_short(said[-1])}")
    for name, before in hashes.items():
        after = _digest(ws.path(name))
        if after != before:
            wrong.append(f"{name} changed ({'gone' if after is None else 'rewritten'})")
    for name in case.exists:
        if not ws.path(name).exists():
            wrong.append(f"{name} was not written")
    for name in case.absent:
        if ws.path(name).exists():
            wrong.append(f"{name} exists")
    if outcome.leftovers:
        wrong.append(f"processes left behind: {', '.join(outcome.leftovers)}")
    if case.check is not None and not wrong:
        problem = case.check(ws, outcome)
        if problem:
            wrong.append(problem)
    return wrong


def run_case(case: Case, cache: Cache, root: Path) -> tuple[str, str, float]:
    """('PASS' | 'WRONG' | 'SKIP', what happened, seconds)."""
    folder = root / re.sub(r"[^A-Za-z0-9_.-]", "_", case.name)
    folder.mkdir(parents=True)
    ws = Workspace(folder, cache)
    try:
        if case.needs is not None:
            _need(case.needs)
        if case.private_dev and not private_dev_available():
            raise Skip("no private /dev here (needs root and mount namespaces); the machine's own is never risked")
        case.setup(ws)
        argv = case.argv(ws) if callable(case.argv) else case.argv
    except Skip as skip:
        return "SKIP", str(skip), 0.0
    except Exception as exc:  # the case itself is broken: say so, never pass it
        return "WRONG", f"setup failed: {type(exc).__name__}: {_short(str(exc))}", 0.0
    hashes = {name: _digest(ws.path(name)) for name in case.unchanged}
    outcome = _execute(case, ws, argv)
    wrong = judge(case, ws, outcome, hashes)
    if wrong:
        return "WRONG", "; ".join(wrong), outcome.seconds
    what = f"exit {outcome.code}"
    return "PASS", what + (f" ({'; '.join(ws.notes)})" if ws.notes else ""), outcome.seconds


def _execute(case: Case, ws: Workspace, argv: Sequence[str | bytes]) -> Outcome:
    command: list[str | bytes] = [PYTHON, "-m", "perfgate", *argv]
    if case.private_dev:
        command = ["unshare", "--mount", "--propagation", "private", "bash", "-c", _PRIVATE_DEV, "private-dev", *command]
    stderr_path = ws.dir / ".stderr"
    stderr_file = open("/dev/full", "wb") if case.stderr == "full" else open(stderr_path, "wb")
    close_stdout = case.stdout == "closed"
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=ws.dir, env=_env(case.env), stdin=subprocess.DEVNULL,
        stdout=None if close_stdout else subprocess.PIPE, stderr=stderr_file,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None, start_new_session=True,
    )  # fmt: skip
    stderr_file.close()
    chunks: list[bytes] = []
    reader = None
    if proc.stdout is not None:
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
        reader.start()
    try:
        if case.during is not None:
            case.during(ws, proc)
        code: int | None = proc.wait(timeout=max(0.1, case.timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        code = None
    seconds = time.monotonic() - started
    if code is None:
        _kill_group(proc.pid)
        proc.wait()
    if reader is not None:
        reader.join(timeout=10)
    leftovers = _leftovers(proc.pid, ws.dir)
    stderr = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
    if case.private_dev:
        ws.devices = dict(line.split(" ", 1) for line in (ws.dir / ".devices").read_text().splitlines() if " " in line) if (ws.dir / ".devices").exists() else {}
    return Outcome(code, b"".join(chunks), stderr, seconds, leftovers)


# bash, run in a new mount namespace: a tmpfs over /dev with the usual nodes, then the command;
# afterwards the type of each node, for the case to judge (a regular file: it was replaced)
_PRIVATE_DEV = r"""
set -e
mount -t tmpfs perfgate-faults /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mkdir -m 1777 /dev/shm
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
set +e
"$@"; code=$?
for node in null full zero; do echo "$node $(stat -c %F /dev/$node 2>&1)"; done > .devices
exit $code
"""

_PRIVATE_DEV_OK: bool | None = None


def private_dev_available() -> bool:
    global _PRIVATE_DEV_OK
    if _PRIVATE_DEV_OK is None:
        try:
            probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", _PRIVATE_DEV, "probe", "true"],
                                   cwd=tempfile.gettempdir(), capture_output=True, timeout=30)  # fmt: skip
            _PRIVATE_DEV_OK = probe.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _PRIVATE_DEV_OK = False
        finally:
            with _suppress():
                os.unlink(os.path.join(tempfile.gettempdir(), ".devices"))
    return _PRIVATE_DEV_OK


def _leftovers(group: int, folder: Path) -> list[str]:
    """Processes of the run still alive a few seconds after it ended (its process group, or
    any whose command line names the case's folder), killed afterwards by their ids."""
    deadline = time.monotonic() + 5.0
    while True:
        found = _processes_of(group, folder)
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid in found:
        with _suppress():
            os.kill(pid, signal.SIGKILL)
    return [f"{pid} ({_short(name.replace(str(folder), '.'), 80)})" for pid, name in found.items()]


def _processes_of(group: int, folder: Path) -> dict[int, str]:
    marker = os.fsencode(str(folder))
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                cmdline = file.read()
        except OSError:
            continue
        if fields[0] == b"Z":
            continue
        if int(fields[2]) == group or marker in cmdline:
            found[int(entry)] = os.fsdecode(cmdline.replace(b"\0", b" ").strip())
    return found


def _kill_group(group: int) -> None:
    with _suppress():
        os.killpg(group, signal.SIGKILL)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, tb: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("PERFGATE_DEBUG", None)
    env.update(extra)
    return env


def _digest(path: Path) -> str | None:
    try:
        if path.is_symlink() and not path.exists():
            return None
        if not path.is_file():
            return f"not a regular file: {stat.S_IFMT(path.stat().st_mode):o}" if path.exists() else None
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _need(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise Skip(f"{module} is not installed")


def _short(text: str, limit: int = 220) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _codes(codes: Sequence[int]) -> str:
    return " or ".join(str(code) for code in codes)


# --- building blocks for the table -----------------------------------------------------------


def _after(seconds: float, signum: int, when: Callable[[Workspace, subprocess.Popen], bool] | None = None):
    """Send ``signum`` to perfgate once ``when`` holds (or after ``seconds``, whichever first)."""

    def during(ws: Workspace, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            if when is not None and when(ws, proc):
                time.sleep(0.3)
                break
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signum)
        else:
            ws.notes.append("finished before the signal")

    return during


def _stderr_says(fragment: str):
    def when(ws: Workspace, proc: subprocess.Popen) -> bool:
        path = ws.dir / ".stderr"
        return path.exists() and fragment in path.read_text(errors="replace")

    return when


def _process_running(fragment: str):
    """A process whose command line holds ``fragment`` (the sleeping interpreter) is alive."""

    def when(ws: Workspace, proc: subprocess.Popen) -> bool:
        return any(fragment in name for name in _processes_of(-1, ws.dir).values())

    return when


def _read_fifo(name: str):
    """Read the FIFO ``name`` while perfgate runs, as a CI step's `cat` would."""

    def during(ws: Workspace, proc: subprocess.Popen) -> None:
        fd = os.open(ws.path(name), os.O_RDONLY | os.O_NONBLOCK)
        got = bytearray()
        try:
            while True:
                done = proc.poll() is not None  # read before the last drain, so nothing written is missed
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:  # a writer, nothing written yet
                    chunk = b""
                got.extend(chunk)
                if not chunk:
                    if done:
                        break
                    time.sleep(0.05)
        finally:
            os.close(fd)
        (ws.dir / ".fifo").write_bytes(bytes(got))

    return during


def _fifo_got_report(ws: Workspace, outcome: Outcome) -> str | None:
    if not stat.S_ISFIFO(os.lstat(ws.path("out.fifo")).st_mode):
        return "the FIFO was replaced by a regular file"
    got = (ws.dir / ".fifo").read_bytes() if (ws.dir / ".fifo").exists() else b""
    if b'"verdict"' not in got:
        return f"the FIFO's reader got no report ({len(got)} bytes)"
    return None


def _device_kept(name: str):
    def check(ws: Workspace, outcome: Outcome) -> str | None:
        kind = ws.devices.get(name, "unknown")
        return None if kind == "character special file" else f"/dev/{name} is now a {kind}"

    return check


def _stdout_has_report(ws: Workspace, outcome: Outcome) -> str | None:
    return None if b'"verdict"' in outcome.stdout else "no JSON report on stdout"


def _json_file(name: str, verdict: str | None = None, samples: bool = False, code: int | None = None):
    """``name`` holds a JSON report (of ``verdict``, or one of "a|b", with samples, with its error's code)."""

    def check(ws: Workspace, outcome: Outcome) -> str | None:
        try:
            document = json.loads(ws.path(name).read_text())
        except (OSError, ValueError) as exc:
            return f"{name} is not JSON: {exc}"
        if verdict is not None and document.get("verdict") not in verdict.split("|"):
            return f"{name}'s verdict is {document.get('verdict')!r}, expected {verdict!r}"
        if code is not None and (document.get("error") or {}).get("exit_code") != code:
            return f"{name}'s error.exit_code is {(document.get('error') or {}).get('exit_code')!r}, expected {code}"
        if samples:
            series = document.get("series") or []
            if not any((s.get("candidate") or {}).get("samples_ns") for s in series):
                return f"{name} keeps no samples"
        return None

    return check


def _exit_says_verdict(name: str):
    """The exit code is the one ``name``'s verdict gives: 1 for fail, else 0."""

    def check(ws: Workspace, outcome: Outcome) -> str | None:
        verdict = json.loads(ws.path(name).read_text()).get("verdict")
        wanted = 1 if verdict == "fail" else 0
        return None if outcome.code == wanted else f"exit {outcome.code} for a {verdict!r} report, expected {wanted}"

    return check


def _all(*checks: Callable[[Workspace, Outcome], str | None]):
    def check(ws: Workspace, outcome: Outcome) -> str | None:
        for one in checks:
            problem = one(ws, outcome)
            if problem:
                return problem
        return None

    return check


def _both(*steps: Callable[[Workspace], Any]):
    def setup(ws: Workspace) -> None:
        for step in steps:
            step(ws)

    return setup


def _symlink(name: str, target: str):
    return lambda ws: os.symlink(target, ws.path(name))


def _hardlink(name: str, target: str):
    return lambda ws: os.link(ws.path(target), ws.path(name))


def _each_samples(document: dict, change: Callable[[list], list]) -> None:
    for series in document["series"]:
        for side in ("reference", "candidate"):
            series[side]["samples_ns"] = [change(block) for block in series[side]["samples_ns"]]


def _baseline_blocks(document: dict, change: Callable[[list], list]) -> None:
    for measured in document["measured"]:
        measured["blocks"] = [change(block) for block in measured["blocks"]]


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _set_ci_string(document: dict) -> None:
    document["checks"][0]["ci"] = "0.9 .. 1.1"


NESTED = "@@samples nested 3000 deep@@"  # replaced in the report's text: json cannot write such a list


def _nest_samples(document: dict) -> None:
    document["series"][0]["candidate"]["samples_ns"] = NESTED


def _error_report(code: Any) -> Callable[[dict], None]:
    def tamper(document: dict) -> None:
        document["verdict"] = "error"
        document["reason"] = "the model could not be loaded"
        document["error"] = {"type": "ModelLoadError", "message": "the model could not be loaded", "exit_code": code}

    return tamper


def _pytest_session(ws: Workspace) -> Path:
    """What the pytest plugin's --perfgate-json writes: a session of measurements."""
    report = json.loads(ws.cache.aa_report().read_text())
    document = {"schema_version": report["schema_version"], "kind": "pytest-session", "tool": report["tool"],
                "created": report["created"], "settings": {}, "environment": report["environment"],
                "measurements": [{"test": "tests/test_speed.py::test_aa", "kind": "compare", "measured": "ref vs cand",
                                  "verdict": "pass", "asserted": True, "note": "", "report": report}]}  # fmt: skip
    return ws.write("session.json", json.dumps(document))


def _sleeping_python(ws: Workspace) -> None:
    """An "interpreter" that never answers perfgate's probe."""
    script = ws.write("python_sleeps", f'#!/bin/bash\nexec -a "{ws.dir}/python_sleeps sleeping" sleep 100000\n')
    script.chmod(0o755)


def _latin1(ws: Workspace) -> None:
    ws.aa()
    os.rename(ws.path("features.parquet"), ws.dir / os.fsdecode(b"donn\xe9es.parquet"))


def _truncated(source: str, name: str, keep: float = 0.5):
    def setup(ws: Workspace) -> None:
        ws.aa()
        data = (FIXTURES / source).read_bytes()
        ws.write(name, data[: int(len(data) * keep)])

    return setup


# --- the table -------------------------------------------------------------------------------

LATIN1 = os.fsdecode(b"donn\xe9es.parquet")
C_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
LONG = "x" * 5000
SIG = {"SIGTERM": (signal.SIGTERM, 143), "SIGINT": (signal.SIGINT, 130)}
REFUSED = r"replace|would|overwrite|input|same"

CASES: list[Case] = [
    # 1 data loss: a report flag naming an input, a special file
    Case("compare --config perfgate.toml --json perfgate.toml", 1, ["compare", "--config", "perfgate.toml", "--json", "perfgate.toml", "-q"],
         (2,), REFUSED, setup=_both(lambda ws: ws.aa(), lambda ws: ws.config()), unchanged=("perfgate.toml",)),
    Case("compare (found perfgate.toml) --json ./perfgate.toml", 1, ["compare", "--json", "./perfgate.toml", "-q"],
         (2,), REFUSED, setup=_both(lambda ws: ws.aa(), lambda ws: ws.config()), unchanged=("perfgate.toml",)),
    Case("compare --json pyproject.toml ([tool.perfgate])", 1, ["compare", "--json", "pyproject.toml", "-q"],
         (2,), REFUSED, setup=_both(lambda ws: ws.aa(), lambda ws: ws.config("pyproject.toml", table="[tool.perfgate]\n")),
         unchanged=("pyproject.toml",)),
    Case("compare --config pyproject.toml --markdown pyproject.toml", 1, ["compare", "--config", "pyproject.toml", "--markdown", "pyproject.toml", "-q"],
         (2,), REFUSED, setup=_both(lambda ws: ws.aa(), lambda ws: ws.config("pyproject.toml", table="[tool.perfgate]\n")),
         unchanged=("pyproject.toml",)),
    Case("compare --config perfgate.toml --html link.html (symlink to the config)", 1,
         ["compare", "--config", "perfgate.toml", "--html", "link.html", "-q"],
         (2,), REFUSED, setup=_both(lambda ws: ws.aa(), lambda ws: ws.config(), _symlink("link.html", "perfgate.toml")),
         unchanged=("perfgate.toml",)),
    Case("compare --config sub/perfgate.toml --junit sub/perfgate.toml", 1,
         ["compare", "--config", "sub/perfgate.toml", "--junit", "sub/perfgate.toml", "-q"],
         (2,), REFUSED, setup=lambda ws: (ws.aa(), ws.config("sub/perfgate.toml", extra="").write_text(
             'reference = "../ref.onnx"\ncandidate = "../cand.onnx"\ndata = "../features.parquet"\ninputs = ["features=f*"]\ntime-budget = 2\n')),
         unchanged=("sub/perfgate.toml",)),
    Case("compare --baseline base.json --json features.parquet (the baseline's data)", 1,
         ["compare", "-c", "cand.onnx", "--baseline", "base.json", "--input", "features=f*", "--time-budget", "2", "--json", "features.parquet", "-q"],
         (2,), REFUSED, setup=lambda ws: (ws.aa(), ws.baseline()), unchanged=("features.parquet", "base.json")),
    Case("compare --baseline base.json --markdown ./base.json", 1,
         ["compare", "-c", "cand.onnx", "--baseline", "base.json", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "2",
          "--markdown", "./base.json", "-q"],
         (2,), REFUSED, setup=lambda ws: (ws.aa(), ws.baseline()), unchanged=("features.parquet", "base.json")),
    Case("compare --json ref.onnx", 1, ["compare", *AA, *QUICK, "--json", "ref.onnx"], (2,), REFUSED,
         setup=lambda ws: ws.aa(), unchanged=("ref.onnx", "cand.onnx", "features.parquet")),
    Case("compare --junit ./features.parquet", 1, ["compare", *AA, *QUICK, "--junit", "./features.parquet"], (2,), REFUSED,
         setup=lambda ws: ws.aa(), unchanged=("features.parquet",)),
    Case("compare --html hardlink-to-candidate", 1, ["compare", *AA, *QUICK, "--html", "same.html"], (2,), REFUSED,
         setup=_both(lambda ws: ws.aa(), _hardlink("same.html", "cand.onnx")), unchanged=("cand.onnx",)),
    Case("compare --json through a symlinked folder to the data", 1, ["compare", *AA, *QUICK, "--json", "alias/features.parquet"], (2,), REFUSED,
         setup=_both(lambda ws: ws.aa(), _symlink("alias", ".")), unchanged=("features.parquet",)),
    Case("compare --candidate-data d2.parquet --json d2.parquet", 1,
         ["compare", *AA, "--candidate-data", "d2.parquet", "--reference-data", "features.parquet", *QUICK, "--json", "d2.parquet"],
         (2,), REFUSED, setup=lambda ws: (ws.aa(), ws.copy("features.parquet", "d2.parquet")), unchanged=("d2.parquet",)),
    Case("calibrate --json ref.onnx", 1, ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--json", "ref.onnx"],
         (2,), REFUSED, setup=lambda ws: ws.aa(), unchanged=("ref.onnx",)),
    Case("calibrate --json features.parquet", 1, ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--json", "features.parquet"],
         (2,), REFUSED, setup=lambda ws: ws.aa(), unchanged=("features.parquet",)),
    Case("calibrate --json ./link (symlink to the model)", 1, ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--json", "./link"],
         (2,), REFUSED, setup=_both(lambda ws: ws.aa(), _symlink("link", "ref.onnx")), unchanged=("ref.onnx",)),
    Case("calibrate --json missing-model.onnx (bad model, report over it)", 1,
         ["calibrate", "-m", "ref.onnx", "-d", "nothing.parquet", *RUN, "--json", "ref.onnx"],
         NOT_ONE, r"ref\.onnx|nothing", setup=lambda ws: ws.aa(), unchanged=("ref.onnx",)),
    Case("run --save ref.onnx", 1, ["run", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--save", "ref.onnx"],
         (2,), REFUSED, setup=lambda ws: ws.aa(), unchanged=("ref.onnx",)),
    Case("run --save ./alias (symlink to the data)", 1, ["run", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--save", "./alias"],
         (2,), REFUSED, setup=_both(lambda ws: ws.aa(), _symlink("alias", "features.parquet")), unchanged=("features.parquet",)),
    Case("merge a.json b.json --output a.json", 1, ["merge", "a.json", "b.json", "--output", "a.json"], (2,), REFUSED,
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json")), unchanged=("a.json", "b.json")),
    Case("merge a.json b.json --markdown ./b.json", 1, ["merge", "a.json", "b.json", "--markdown", "./b.json"], (2,), REFUSED,
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json")), unchanged=("a.json", "b.json")),
    Case("merge a.json b.json --html link (symlink to a part)", 1, ["merge", "a.json", "b.json", "--html", "link"], (2,), REFUSED,
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json"), os.symlink("a.json", ws.path("link"))), unchanged=("a.json",)),
    Case("compare --json /dev/null (private /dev): a run, /dev/null kept", 1, ["compare", *AA, *QUICK, "--json", "/dev/null"], (0,),
         setup=lambda ws: ws.aa(), private_dev=True, check=_device_kept("null")),
    Case("merge a.json b.json --output /dev/null (private /dev)", 1, ["merge", "a.json", "b.json", "--output", "/dev/null"], (0,),
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json")), private_dev=True, check=_device_kept("null")),
    Case("compare --markdown /dev/null --junit /dev/null (private /dev)", 1,
         ["compare", *AA, *QUICK, "--markdown", "/dev/null", "--junit", "/dev/null"], (0,),
         setup=lambda ws: ws.aa(), private_dev=True, check=_device_kept("null")),
    Case("compare --json /dev/full (private /dev): exit 3", 1, ["compare", *AA, *QUICK, "--json", "/dev/full"], (3,), r"/dev/full",
         setup=lambda ws: ws.aa(), private_dev=True, check=_device_kept("full")),
    Case("merge a.json b.json --output /dev/full (private /dev): exit 3", 1, ["merge", "a.json", "b.json", "--output", "/dev/full"], (3,),
         r"/dev/full", setup=lambda ws: (ws.report("a.json"), ws.report("b.json")), private_dev=True, check=_device_kept("full"),
         quiet_stderr=False),
    Case("calibrate --json /dev/full (private /dev): exit 3", 1,
         ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--json", "/dev/full"], (3,), r"/dev/full",
         setup=lambda ws: ws.aa(), private_dev=True, check=_device_kept("full")),
    Case("compare --json out.fifo: written into the FIFO", 1, ["compare", *AA, *QUICK, "--json", "out.fifo"], (0,),
         setup=lambda ws: (ws.aa(), ws.fifo("out.fifo")), during=_read_fifo("out.fifo"), check=_fifo_got_report),
    Case("merge a.json b.json --output out.fifo: written into the FIFO", 1, ["merge", "a.json", "b.json", "--output", "out.fifo"], (0,),
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json"), ws.fifo("out.fifo")), during=_read_fifo("out.fifo"),
         check=_fifo_got_report),
    Case("compare --json /dev/stdout (private /dev): the report on stdout", 1,
         ["compare", *AA, *QUICK, "--format", "markdown", "--json", "/dev/stdout"], (0,),
         setup=lambda ws: ws.aa(), private_dev=True, check=_stdout_has_report),
    # 2 broken input that passes
    Case("compare --baseline with every sample 0", 2,
         ["compare", "-c", "cand.onnx", "--baseline", "base.json", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "2", "-q"],
         NOT_ONE, r"base\.json", setup=lambda ws: (ws.aa(), ws.baseline(tamper=lambda d: _baseline_blocks(d, lambda b: [0] * len(b))))),
    Case("compare --baseline with every sample negative", 2,
         ["compare", "-c", "cand.onnx", "--baseline", "base.json", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "2", "-q"],
         NOT_ONE, r"base\.json", setup=lambda ws: (ws.aa(), ws.baseline(tamper=lambda d: _baseline_blocks(d, lambda b: [-abs(x) for x in b])))),
    Case("compare --baseline with empty blocks", 2,
         ["compare", "-c", "cand.onnx", "--baseline", "base.json", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "2", "-q"],
         NOT_ONE, r"base\.json", setup=lambda ws: (ws.aa(), ws.baseline(tamper=lambda d: _baseline_blocks(d, lambda b: [])))),
    Case("compare --baseline with one negative sample per block", 2,
         ["compare", "-c", "cand.onnx", "--baseline", "base.json", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "2", "-q"],
         NOT_ONE, r"base\.json", setup=lambda ws: (ws.aa(), ws.baseline(tamper=lambda d: _baseline_blocks(d, lambda b: [-1] + b[1:])))),
    Case("report --budget on emptied samples", 2, ["report", "--budget", "latency.p50:+10%", "R.json"], (3,), r"R\.json",
         setup=lambda ws: ws.report(tamper=lambda d: _each_samples(d, lambda b: []))),
    Case("report --budget on zeroed samples", 2, ["report", "--budget", "latency.p50:+10%", "R.json"], (3,), r"R\.json",
         setup=lambda ws: ws.report(tamper=lambda d: _each_samples(d, lambda b: [0] * len(b)))),
    Case("report --budget on negative samples", 2, ["report", "--budget", "latency.p50:+10%", "R.json"], (3,), r"R\.json",
         setup=lambda ws: ws.report(tamper=lambda d: _each_samples(d, lambda b: [-abs(x) for x in b]))),
    Case("report --max-latency-increase on zeroed candidate only", 2, ["report", "--max-latency-increase", "10%", "R.json"], (3,), r"R\.json",
         setup=lambda ws: ws.report(tamper=lambda d: [s["candidate"].update(samples_ns=[[0] * len(b) for b in s["candidate"]["samples_ns"]]) for s in d["series"]])),
    Case("report on an error report whose exit_code is 0", 2, ["report", "E.json"], (3,), None, setup=lambda ws: ws.report("E.json", _error_report(0))),
    Case("report on an error report whose exit_code is 1", 2, ["report", "E.json"], (3,), None, setup=lambda ws: ws.report("E.json", _error_report(1))),
    Case("report on an error report whose exit_code is 'zero'", 2, ["report", "E.json"], (3,), None, setup=lambda ws: ws.report("E.json", _error_report("zero"))),
    Case("report on an error report whose exit_code is 4", 2, ["report", "E.json"], (3,), None, setup=lambda ws: ws.report("E.json", _error_report(4))),
    Case("report on an error report whose exit_code is 2 (kept)", 2, ["report", "E.json"], (2,), None, setup=lambda ws: ws.report("E.json", _error_report(2))),
    Case("report on an error report whose exit_code is 143 (kept)", 2, ["report", "E.json"], (143,), None,
         setup=lambda ws: ws.report("E.json", _error_report(143))),
    Case("report on a 'pass' report that carries an error", 2, ["report", "E.json"], (3,), None,
         setup=lambda ws: ws.report("E.json", lambda d: (_error_report(0)(d), d.update(verdict="pass")))),
    Case("merge cpu.json ./cpu.json", 2, ["merge", "cpu.json", "./cpu.json"], (2,), r"cpu\.json|same|twice", setup=lambda ws: ws.report("cpu.json")),
    Case("merge cpu.json cpu.json", 2, ["merge", "cpu.json", "cpu.json"], (2,), r"cpu\.json|same|twice", setup=lambda ws: ws.report("cpu.json")),
    Case("merge cpu.json link.json (symlink)", 2, ["merge", "cpu.json", "link.json"], (2,), r"cpu\.json|link|same|twice",
         setup=lambda ws: (ws.report("cpu.json"), os.symlink("cpu.json", ws.path("link.json")))),
    Case("merge cpu.json hard.json (hardlink)", 2, ["merge", "cpu.json", "hard.json"], (2,), r"cpu\.json|hard|same|twice",
         setup=lambda ws: (ws.report("cpu.json"), os.link(ws.path("cpu.json"), ws.path("hard.json")))),
    Case("run --seed -1", 2, ["run", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--seed", "-1"], (2,), r"seed", setup=lambda ws: ws.aa()),
    Case("compare --seed -1", 2, ["compare", *AA, *QUICK, "--seed", "-1"], (2,), r"seed", setup=lambda ws: ws.aa()),
    Case("calibrate --seed -1", 2, ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--seed", "-1"], (2,), r"seed",
         setup=lambda ws: ws.aa()),
    # compare takes any whole seed of 0 or more (numpy's seed sequences do): run takes what compare takes
    Case("run --seed 2**64 (as compare)", 2, ["run", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--seed", str(2**64)], (0,),
         setup=lambda ws: ws.aa()),
    # 3 a crash that exits 1
    Case("report on a check whose ci is a string", 3, ["report", "R.json"], NOT_ONE, r"R\.json", setup=lambda ws: ws.report(tamper=_set_ci_string)),
    Case("report --budget on a check whose ci is a string", 3, ["report", "--budget", "latency.p50:+10%", "R.json"], NOT_ONE, r"R\.json",
         setup=lambda ws: ws.report(tamper=_set_ci_string)),
    Case("report on JSON nested 100 000 deep", 3, ["report", "deep.json"], NOT_ONE, r"deep\.json",
         setup=lambda ws: ws.write("deep.json", _nested(100_000))),
    Case("report on a report whose 'checks' is nested 100 000 deep", 3, ["report", "R.json"], NOT_ONE, r"R\.json",
         setup=lambda ws: ws.write("R.json", ws.report().read_text().replace('"checks": [', '"checks": ' + "[" * 100_000 + "]" * 99_999 + ", [", 1))),
    Case("report --budget on samples nested 3000 deep", 3, ["report", "--budget", "latency.p50:+10%", "R.json"], NOT_ONE, r"R\.json",
         setup=lambda ws: ws.report(tamper=_nest_samples)),
    Case("report --format html on samples nested 3000 deep", 3, ["report", "--format", "html", "R.json"], NOT_ONE, r"R\.json",
         setup=lambda ws: ws.report(tamper=_nest_samples)),
    Case("merge with a part whose ci is a string", 3, ["merge", "a.json", "b.json"], NOT_ONE, r"b\.json",
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json", _set_ci_string))),
    Case("merge with a part nested 100 000 deep", 3, ["merge", "a.json", "deep.json"], NOT_ONE, r"deep\.json",
         setup=lambda ws: (ws.report("a.json"), ws.write("deep.json", _nested(100_000)))),
    Case("merge --format html with a part's samples nested 3000 deep", 3, ["merge", "--format", "html", "a.json", "b.json"], NOT_ONE, r"b\.json",
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json", _nest_samples))),
    Case("report on a JSON list", 3, ["report", "list.json"], NOT_ONE, r"list\.json", setup=lambda ws: ws.write("list.json", "[1, 2]")),
    Case("report on checks that are a mapping", 3, ["report", "R.json"], NOT_ONE, r"R\.json",
         setup=lambda ws: ws.report(tamper=lambda d: d.update(checks={"latency.p50": 1}))),
    Case("report on non-UTF-8 bytes", 3, ["report", "bytes.json"], NOT_ONE, r"bytes\.json", setup=lambda ws: ws.write("bytes.json", b'{"verdict": "\xff\xfe"}')),
    Case("report R.json >&- (stdout closed)", 3, ["report", "R.json"], (3,), stdout="closed", setup=lambda ws: ws.report()),
    Case("report --format json R.json >&- (stdout closed)", 3, ["report", "--format", "json", "R.json"], (3,), stdout="closed", setup=lambda ws: ws.report()),
    Case("merge a.json b.json >&- (stdout closed)", 3, ["merge", "a.json", "b.json"], (3,), stdout="closed",
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json"))),
    Case("--version >&- (stdout closed)", 3, ["--version"], (3,), stdout="closed"),
    # a closed stdout is said first: nothing could show the report, whatever else is wrong
    Case("report missing.json >&- (stdout closed, an error too)", 3, ["report", "missing.json"], NOT_ONE, r"stdout is closed", stdout="closed"),
    Case("config value holding a NUL byte (data)", 3, ["compare", "-q"], (2,), r"NUL|null|\\x00|\\0|perfgate\.toml|data",
         setup=lambda ws: (ws.aa(), ws.config(extra="").write_text(ws.path("perfgate.toml").read_text().replace('"features.parquet"', '"features\\u0000.parquet"')))),
    Case("config value holding a NUL byte (reference)", 3, ["compare", "-q"], (2,), r"NUL|null|\\x00|\\0|perfgate\.toml|reference",
         setup=lambda ws: (ws.aa(), ws.config().write_text(ws.path("perfgate.toml").read_text().replace('"ref.onnx"', '"ref\\u0000.onnx"')))),
    Case("config value holding a NUL byte (a budget)", 3, ["compare", "-q"], (2,), r".",
         setup=lambda ws: (ws.aa(), ws.config(extra='budgets = ["latency.p50:+10\\u0000%"]\n'))),
    Case("config file holding a raw NUL byte", 3, ["compare", "--config", "perfgate.toml", "-q"], (2,), r"perfgate\.toml",
         setup=lambda ws: (ws.aa(), ws.write("perfgate.toml", b'reference = "ref.onnx"\0\n'))),
    Case("compare with a missing data file, stderr on /dev/full", 3, ["compare", "-r", "ref.onnx", "-c", "cand.onnx", "-d", "missing.parquet", *QUICK],
         NOT_ONE, stderr="full", setup=lambda ws: ws.aa()),
    Case("report missing.json, stderr on /dev/full", 3, ["report", "missing.json"], NOT_ONE, stderr="full"),
    Case("merge a.json missing.json, stderr on /dev/full", 3, ["merge", "a.json", "missing.json"], NOT_ONE, stderr="full",
         setup=lambda ws: ws.report("a.json")),
    # 4 load: a budget the run cannot resolve is inconclusive, never a usage error
    # What CI asserts of the tight A/A: never a usage error, its samples kept, the verdict
    # the statistics gave. Whether a byte-copy A/A may fail a +0.5 % budget is a question of
    # the interval's coverage, asserted on seeded samples (tests/test_stats.py) and measured
    # by benchmarks/aa_false_fails.py, never by one timed run on a shared box.
    Case("compare --budget latency.p50:+0.5% --time-budget 2: never a usage error", 4,
         ["compare", *AA, *QUICK, "--budget", "latency.p50:+0.5%", "--budget", "latency.p95:+0.5%", "--json", "r.json"], (0, 1),
         setup=lambda ws: ws.aa(), exists=("r.json",),
         check=_all(_json_file("r.json", "inconclusive|pass|fail", samples=True), _exit_says_verdict("r.json"))),
    Case("compare --budget latency.p50:+0.5% --time-budget 2 --json", 4,
         ["compare", *AA, *QUICK, "--budget", "latency.p50:+0.5%", "--budget", "latency.p95:+0.5%", "--json", "r.json"], (0,),
         setup=lambda ws: ws.aa(), exists=("r.json",), check=_json_file("r.json", "inconclusive|pass", samples=True)),
    Case("compare --budget latency.p50:+0.5% --fail-on-inconclusive", 4,
         ["compare", *AA, *QUICK, "--budget", "latency.p50:+0.5%", "--budget", "latency.p95:+0.5%", "--fail-on-inconclusive", "--json", "r.json"],
         # a byte copy can be resolved within +-0.5 % on a quiet run: a pass is right too; 2 never is
         (4, 0), setup=lambda ws: ws.aa(), exists=("r.json",), check=_json_file("r.json", "inconclusive|pass", samples=True)),
    Case("compare --max-latency-increase 0.5% --time-budget 1", 4,
         ["compare", *AA, *QUICK, "--max-latency-increase", "0.5%", "--time-budget", "1", "--json", "r.json"], (0,),
         setup=lambda ws: ws.aa(), check=_json_file("r.json", "inconclusive|pass", samples=True)),
    Case("compare --budget latency.p95:+1% --time-budget 1", 4,
         ["compare", *AA, *QUICK, "--budget", "latency.p95:+1%", "--time-budget", "1", "--json", "r.json"], (0,),
         setup=lambda ws: ws.aa(), check=_json_file("r.json", samples=True)),
    Case("compare --config (budget too tight for its time) --fail-on-inconclusive", 4,
         ["compare", "--config", "perfgate.toml", "--fail-on-inconclusive", "--json", "r.json", "-q"], (4,),
         setup=lambda ws: (ws.aa(), ws.config(extra='budgets = ["latency.p50:+0.3%"]\n')), check=_json_file("r.json", "inconclusive", samples=True)),
    # 5 orphans, hangs, signals
    Case("SIGTERM while probing a --candidate-python that never answers", 5,
         ["compare", *AA, *QUICK, "--candidate-python", "./python_sleeps", "--json", "r.json"], (143,), r"SIGTERM|interrupt",
         setup=lambda ws: (ws.aa(), _sleeping_python(ws)), during=_after(20, signal.SIGTERM, _process_running("sleeping")),
         exists=("r.json",), timeout=60),
    Case("SIGINT while probing a --candidate-python that never answers", 5,
         ["compare", *AA, *QUICK, "--candidate-python", "./python_sleeps"], (130,), r"SIGINT|interrupt",
         setup=lambda ws: (ws.aa(), _sleeping_python(ws)), during=_after(20, signal.SIGINT, _process_running("sleeping")), timeout=60),
    Case("SIGKILL while probing a --candidate-python that never answers", 5,
         ["compare", *AA, *QUICK, "--candidate-python", "./python_sleeps"], (-9,),
         setup=lambda ws: (ws.aa(), _sleeping_python(ws)), during=_after(20, signal.SIGKILL, _process_running("sleeping")), timeout=60),
    Case("calibrate --json r.json, SIGTERM while measuring", 5,
         ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "60", "--json", "r.json"],
         (143,), r"SIGTERM|interrupt", quiet_stderr=False, setup=lambda ws: ws.aa(), during=_after(30, signal.SIGTERM, _stderr_says("measuring")),
         exists=("r.json",), check=_json_file("r.json", "error", code=143)),
    Case("calibrate --json r.json, SIGINT while measuring", 5,
         ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "60", "--json", "r.json"],
         (130,), r"SIGINT|interrupt", quiet_stderr=False, setup=lambda ws: ws.aa(), during=_after(30, signal.SIGINT, _stderr_says("measuring")),
         exists=("r.json",), check=_json_file("r.json", "error", code=130)),
    Case("compare --json r.json, SIGTERM while measuring", 5,
         ["compare", *AA, "--input", "features=f*", "--cold-starts", "0", "--output-rows", "16", "--time-budget", "60",
          "--max-latency-increase", "0.5%", "--json", "r.json"],
         (143,), r"SIGTERM|interrupt", quiet_stderr=False, setup=lambda ws: ws.aa(), during=_after(30, signal.SIGTERM, _stderr_says("measuring")),
         exists=("r.json",), check=_json_file("r.json", "error", code=143)),
    Case("run --save b.json, SIGTERM while measuring: no baseline", 5,
         ["run", "-m", "ref.onnx", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "60", "--save", "b.json"],
         (143,), r"SIGTERM|interrupt", quiet_stderr=False, setup=lambda ws: ws.aa(),
         during=_after(20, signal.SIGTERM, _stderr_says("loading")), absent=("b.json",)),
    Case("run --save over an old baseline, SIGINT while measuring: old one kept", 5,
         ["run", "-m", "ref.onnx", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "60", "--save", "base.json"],
         (130,), r"SIGINT|interrupt", quiet_stderr=False, setup=lambda ws: (ws.aa(), ws.baseline()),
         during=_after(20, signal.SIGINT, _stderr_says("loading")), unchanged=("base.json",)),
    Case("compare with a reference that is a FIFO", 5, ["compare", "-r", "model.onnx", "-c", "cand.onnx", "-d", "features.parquet", *QUICK],
         (2,), r"model\.onnx", setup=lambda ws: (ws.aa(), ws.fifo("model.onnx")), timeout=10),
    Case("calibrate a model that is a FIFO", 5, ["calibrate", "-m", "model.onnx", "-d", "features.parquet", *RUN],
         (2,), r"model\.onnx", setup=lambda ws: (ws.aa(), ws.fifo("model.onnx")), timeout=10),
    Case("run a model that is a FIFO", 5, ["run", "-m", "model.onnx", "-d", "features.parquet", *RUN],
         (2,), r"model\.onnx", setup=lambda ws: (ws.aa(), ws.fifo("model.onnx")), timeout=10),
    Case("compare with data that is a FIFO", 5, ["compare", "-r", "ref.onnx", "-c", "cand.onnx", "-d", "data.parquet", *QUICK],
         (2,), r"data\.parquet", setup=lambda ws: (ws.aa(), ws.fifo("data.parquet")), timeout=10),
    Case("compare --call-timeout 1e-9", 5, ["compare", *AA, *QUICK, "--call-timeout", "1e-9"], (2,), r"call-timeout", setup=lambda ws: ws.aa(), timeout=30),
    Case("compare --call-timeout 0", 5, ["compare", *AA, *QUICK, "--call-timeout", "0"], (2,), r"call-timeout", setup=lambda ws: ws.aa(), timeout=30),
    Case("compare --call-timeout nan", 5, ["compare", *AA, *QUICK, "--call-timeout", "nan"], (2,), r"call-timeout", setup=lambda ws: ws.aa(), timeout=30),
    Case("compare --call-timeout -1", 5, ["compare", *AA, *QUICK, "--call-timeout", "-1"], (2,), r"call-timeout", setup=lambda ws: ws.aa(), timeout=30),
    # 6 valid runs and their messages
    Case("Latin-1 data file name under LC_ALL=C", 6, ["compare", "-r", "ref.onnx", "-c", "cand.onnx", "-d", LATIN1, *QUICK],
         (0,), setup=_latin1, env=C_LOCALE),
    Case("Latin-1 data file name under LC_ALL=C, --json and --markdown", 6,
         ["compare", "-r", "ref.onnx", "-c", "cand.onnx", "-d", LATIN1, *QUICK, "--json", "r.json", "--markdown", "r.md"],
         (0,), setup=_latin1, env=C_LOCALE, exists=("r.json", "r.md")),
    Case("Latin-1 model file name under LC_ALL=C", 6, ["compare", "-r", os.fsdecode(b"r\xe9f.onnx"), "-c", "cand.onnx", "-d", "features.parquet", *QUICK],
         (0,), setup=lambda ws: (ws.aa(), os.rename(ws.path("ref.onnx"), ws.dir / os.fsdecode(b"r\xe9f.onnx"))), env=C_LOCALE),
    Case("Latin-1 missing data file under LC_ALL=C: one line", 6, ["compare", "-r", "ref.onnx", "-c", "cand.onnx", "-d", LATIN1, *QUICK],
         NOT_ONE, r"donn", setup=lambda ws: ws.aa(), env=C_LOCALE),
    Case(".pt2 with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1", 6,
         ["compare", "-r", "torch/mlp_reference.pt2", "-c", "torch/mlp_aa.pt2", "-d", "features.parquet", *QUICK], (0,),
         setup=lambda ws: (ws.copy("features.parquet"), ws.copy("torch")), env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}, needs="torch",
         timeout=180),
    Case("--time-budget 1e308", 6, ["compare", *AA, *QUICK, "--time-budget", "1e308"], (0, 2), r"time-budget", setup=lambda ws: ws.aa(), timeout=120),
    Case("--time-budget inf", 6, ["compare", *AA, *QUICK, "--time-budget", "inf"], (2,), r"time-budget", setup=lambda ws: ws.aa(), timeout=30),
    Case("--time-budget 1e400 (inf after parsing)", 6, ["compare", *AA, *QUICK, "--time-budget", "1e400"], (2,), r"time-budget",
         setup=lambda ws: ws.aa(), timeout=30),
    Case("--time-budget nan", 6, ["compare", *AA, *QUICK, "--time-budget", "nan"], (2,), r"time-budget", setup=lambda ws: ws.aa(), timeout=30),
    Case("run --time-budget 1e308", 6, ["run", "-m", "ref.onnx", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "1e308", "-q"],
         (0, 2), r"time-budget", setup=lambda ws: ws.aa(), timeout=120),
    Case("calibrate --time-budget 1e308", 6, ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "1e308", "-q"],
         (0, 2), r"time-budget", setup=lambda ws: ws.aa(), timeout=120),
    Case("a 5000-character data path", 6, ["compare", "-r", "ref.onnx", "-c", "cand.onnx", "-d", LONG + ".parquet", *QUICK], NOT_ONE, r"\.\.\.|…|x{20}",
         setup=lambda ws: ws.aa()),
    Case("a 5000-character model path", 6, ["compare", "-r", LONG + ".onnx", "-c", "cand.onnx", "-d", "features.parquet", *QUICK], NOT_ONE,
         r"\.\.\.|…|x{20}", setup=lambda ws: ws.aa()),
    Case("a 5000-character --json path", 6, ["compare", *AA, *QUICK, "--json", LONG + ".json"], NOT_ONE, r"json", setup=lambda ws: ws.aa()),
    Case("a 5000-character report path", 6, ["report", LONG + ".json"], NOT_ONE, r"\.\.\.|…|x{20}"),
    Case("a 300-character file name for --json", 6, ["compare", *AA, *QUICK, "--json", "y" * 300 + ".json"], NOT_ONE, r"json|long",
         setup=lambda ws: ws.aa()),
    Case("a truncated .keras", 6, ["compare", "-r", "ref.keras", "-c", "cand.keras", "-d", "features.parquet", *QUICK], (3,),
         r"^(?!.*(file not found|no such file)).*ref\.keras", setup=_both(_truncated("tensorflow/mlp_reference.keras", "ref.keras"),
                                                                        lambda ws: ws.copy("tensorflow/mlp_aa.keras", "cand.keras")),
         needs="tensorflow", timeout=180),
    Case("an empty .keras", 6, ["compare", "-r", "ref.keras", "-c", "cand.keras", "-d", "features.parquet", *QUICK], (3,),
         r"^(?!.*(file not found|no such file)).*ref\.keras", setup=_both(_truncated("tensorflow/mlp_reference.keras", "ref.keras", 0),
                                                                        lambda ws: ws.copy("tensorflow/mlp_aa.keras", "cand.keras")),
         needs="tensorflow", timeout=180),
    Case("a truncated .onnx", 6, ["compare", "-r", "bad.onnx", "-c", "cand.onnx", "-d", "features.parquet", *QUICK], (3,),
         r"^(?!.*(file not found|no such file)).*bad\.onnx", setup=_truncated("mlp_reference.onnx", "bad.onnx")),
    Case("a truncated .pt2", 6, ["compare", "-r", "bad.pt2", "-c", "torch/mlp_aa.pt2", "-d", "features.parquet", *QUICK], (3,),
         r"^(?!.*(file not found|no such file)).*bad\.pt2", setup=_both(_truncated("torch/mlp_reference.pt2", "bad.pt2"), lambda ws: ws.copy("torch")),
         needs="torch", timeout=180),
    # 7 trips
    Case("compare --json missing/r.json", 7, ["compare", *AA, *QUICK, "--json", "missing/r.json"], (0, 2), r"missing",
         setup=lambda ws: ws.aa(), check=lambda ws, o: None if o.code == 2 or ws.path("missing/r.json").exists() else "exit 0 without the report"),
    Case("compare --markdown missing/r.md --html missing/r.html", 7, ["compare", *AA, *QUICK, "--markdown", "missing/r.md", "--html", "missing/r.html"],
         (0, 2), r"missing", setup=lambda ws: ws.aa(),
         check=lambda ws, o: None if o.code == 2 or ws.path("missing/r.html").exists() else "exit 0 without the report"),
    Case("compare --junit missing/deeper/r.xml", 7, ["compare", *AA, *QUICK, "--junit", "missing/deeper/r.xml"], (0, 2), r"missing",
         setup=lambda ws: ws.aa(), check=lambda ws, o: None if o.code == 2 or ws.path("missing/deeper/r.xml").exists() else "exit 0 without the report"),
    Case("calibrate --json missing/c.json", 7, ["calibrate", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--json", "missing/c.json"], (0, 2),
         r"missing", setup=lambda ws: ws.aa(),
         check=lambda ws, o: None if o.code == 2 or ws.path("missing/c.json").exists() else "exit 0 without the report"),
    Case("run --save missing/b.json", 7, ["run", "-m", "ref.onnx", "-d", "features.parquet", *RUN, "--save", "missing/b.json"], (0, 2), r"missing",
         setup=lambda ws: ws.aa(), check=lambda ws, o: None if o.code == 2 or ws.path("missing/b.json").exists() else "exit 0 without the baseline"),
    Case("merge --output missing/m.json", 7, ["merge", "a.json", "b.json", "--output", "missing/m.json"], (0, 2), r"missing",
         setup=lambda ws: (ws.report("a.json"), ws.report("b.json")),
         check=lambda ws, o: None if o.code == 2 or ws.path("missing/m.json").exists() else "exit 0 without the report"),
    # refused before measuring: exit 3, as every report path that cannot take a report (the --json directory case of test_cli)
    Case("compare --json a-file/r.json (a file where a folder is needed)", 7, ["compare", *AA, *QUICK, "--json", "ref.onnx/r.json"], (3,),
         r"ref\.onnx", setup=lambda ws: ws.aa(), unchanged=("ref.onnx",)),
    Case("report on the pytest plugin's --perfgate-json", 7, ["report", "session.json"], NOT_ONE, r"pytest", setup=_pytest_session),
    Case("report --budget on the pytest plugin's --perfgate-json", 7, ["report", "--budget", "latency.p50:+10%", "session.json"], NOT_ONE,
         r"pytest", setup=_pytest_session),
    Case("merge with the pytest plugin's --perfgate-json", 7, ["merge", "a.json", "session.json"], NOT_ONE, r"pytest",
         setup=lambda ws: (ws.report("a.json"), _pytest_session(ws))),
    Case("report on a baseline (run --save)", 7, ["report", "base.json"], NOT_ONE, r"baseline", setup=lambda ws: ws.baseline()),
    Case("report on a calibration (calibrate --json)", 7, ["report", "cal.json"], NOT_ONE, r"calibrat",
         setup=lambda ws: shutil.copyfile(ws.cache.calibration(), ws.path("cal.json"))),
    Case("compare --baseline naming a comparison report", 7,
         ["compare", "-c", "cand.onnx", "--baseline", "R.json", "-d", "features.parquet", "--input", "features=f*", "--time-budget", "2", "-q"],
         NOT_ONE, r"R\.json.*(report|baseline)|(report|baseline).*R\.json", setup=lambda ws: (ws.aa(), ws.report())),
]


# the cases CI runs (tests/test_fault_injection.py): each class several times, measuring
# nothing or for two seconds at most, about a minute in all on a 2-core runner
FAST = frozenset({
    # 1
    "compare --config perfgate.toml --json perfgate.toml", "compare --json pyproject.toml ([tool.perfgate])",
    "compare --baseline base.json --json features.parquet (the baseline's data)", "calibrate --json ref.onnx",
    "calibrate --json ./link (symlink to the model)", "merge a.json b.json --output a.json",
    "merge a.json b.json --output /dev/null (private /dev)", "merge a.json b.json --output /dev/full (private /dev): exit 3",
    "merge a.json b.json --output out.fifo: written into the FIFO",
    # 2
    "report --budget on emptied samples", "report --budget on zeroed samples", "report on an error report whose exit_code is 0",
    "report on an error report whose exit_code is 1", "merge cpu.json ./cpu.json", "merge cpu.json link.json (symlink)", "run --seed -1",
    # 3
    "report on a check whose ci is a string", "report on JSON nested 100 000 deep", "report --budget on samples nested 3000 deep",
    "merge with a part whose ci is a string", "report R.json >&- (stdout closed)", "config value holding a NUL byte (data)",
    "compare with a missing data file, stderr on /dev/full",
    # 4
    "compare --budget latency.p50:+0.5% --time-budget 2: never a usage error",
    # 5
    "SIGTERM while probing a --candidate-python that never answers", "SIGKILL while probing a --candidate-python that never answers",
    "compare with a reference that is a FIFO", "compare --call-timeout 1e-9",
    # 6
    "Latin-1 data file name under LC_ALL=C", "--time-budget inf", "a 5000-character data path", "a truncated .onnx",
    # 7
    "compare --json missing/r.json", "merge --output missing/m.json", "report on the pytest plugin's --perfgate-json",
    "report on a baseline (run --save)",
})  # fmt: skip
assert FAST <= {case.name for case in CASES}, FAST - {case.name for case in CASES}
CASES = [dataclasses.replace(case, fast=case.name in FAST) for case in CASES]
assert len({case.name for case in CASES}) == len(CASES), "case names are unique"


def selected(classes: Sequence[int] = (), fast: bool = False) -> list[Case]:
    return [case for case in CASES if (not classes or case.cls in classes) and (case.fast or not fast)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--class", dest="classes", type=int, action="append", default=[], choices=range(1, 8), help="only this class (repeatable)")
    parser.add_argument("--fast", action="store_true", help="only the cases that measure nothing or for a second or two")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--match", default=None, help="only cases whose name holds this text")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    cases = [case for case in selected(args.classes, args.fast) if args.match is None or args.match in case.name]
    if args.list:
        for case in cases:
            print(f"{case.cls}  {'fast' if case.fast else 'slow'}  {case.name}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="perfgate-faults-"))
    cache = Cache(root / "cache")
    tally: dict[int, list[int]] = {}
    started = time.monotonic()
    try:
        for case in cases:
            verdict, what, seconds = run_case(case, cache, root / "cases")
            print(f"{verdict:5} class {case.cls}  {case.name}: {what} [{seconds:.1f} s]", flush=True)
            right, counted = tally.setdefault(case.cls, [0, 0])
            if verdict != "SKIP":
                tally[case.cls] = [right + (verdict == "PASS"), counted + 1]
    finally:
        if args.keep:
            print(f"cases kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    for cls in sorted(tally):
        right, counted = tally[cls]
        print(f"class {cls}: {right} of {counted} right")
    wrong = sum(counted - right for right, counted in tally.values())
    print(f"{wrong} wrong in {time.monotonic() - started:.0f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
