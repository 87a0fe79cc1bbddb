"""Which Python runs a side's worker: perfgate's own, or another environment's
(``--reference-python`` / ``--candidate-python``: the same model under other framework
versions, interleaved in the same run).

Another interpreter runs perfgate's own source, never a copy installed there: the parent
and the worker pickle the same classes over their pipe, so both must be the same perfgate.
The source goes in through PYTHONPATH as a folder holding only a link to the perfgate
package, never the folder the package lies in: for an installed perfgate that folder is the
parent's site-packages, whose frameworks would then shadow the other environment's own.

Before any worker starts, each other interpreter is probed once: its Python version, its
environment (``sys.prefix``), whether it imports what a worker imports (numpy), whether it
has the framework, and whether its numpy and perfgate's read each other's pickled arrays
(multiprocessing pickles with the sender's default protocol, which every Python perfgate
supports reads, so the minor versions need not match; numpy's pickles across its major
versions are what can fail). Each failure is one line naming the interpreter.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import platform
import shutil
import signal
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from perfgate.backends import BUILTIN_BACKENDS, require_framework
from perfgate.errors import BackendUnavailableError, UsageError, option, stop_signals_handled_by
from perfgate.results import SIDES, ModelReport
from perfgate.worker.core import die_with_parent, libc_prctl

MIN_PYTHON = (3, 10)  # pyproject's requires-python
PROBE_TIMEOUT_S = 120.0  # a cold disk can take long to import numpy; a hang must still end
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the perfgate package


@dataclass(frozen=True)
class Interpreter:
    """The Python a worker runs under."""

    executable: str  # absolute, links kept: a venv's bin/python is a link, and the link is the venv
    version: str  # "3.11.7"
    prefix: str  # sys.prefix: the environment, what tells two of them apart
    own: bool = False  # perfgate's own interpreter (sys.executable)

    def describe(self) -> dict[str, str]:
        return {"executable": self.executable, "version": self.version, "prefix": self.prefix}


OWN = Interpreter(sys.executable, platform.python_version(), sys.prefix, own=True)


def locate(path: str, api_name: str) -> str:
    """The interpreter ``path`` names (a path, or a command on PATH such as ``python3.12``),
    absolute; a UsageError naming the option unless it is an executable file."""
    given = option(api_name, path)
    if not isinstance(path, str) or not path.strip():
        raise UsageError(f"{option(api_name)} must be the path of a Python interpreter, got {path!r}")
    found = path if os.sep in path else (shutil.which(path) or path)
    if not os.path.exists(found):
        raise UsageError(f"{given}: no such file (name a Python interpreter, such as a virtual environment's bin/python)")
    if os.path.isdir(found):
        raise UsageError(f"{given} is a directory; name its Python interpreter (for a virtual environment, {os.path.join(path, 'bin', 'python')})")
    if not os.access(found, os.X_OK):
        raise UsageError(f"{given} is not executable, so it cannot be a Python interpreter")
    return os.path.abspath(found)


def source_folder(folder: str | Path) -> str:
    """A folder in ``folder`` holding only a link to perfgate's package, for PYTHONPATH."""
    root = Path(folder) / "perfgate-source"
    link = root / "perfgate"
    if not link.exists():
        root.mkdir(exist_ok=True)
        link.symlink_to(PACKAGE_DIR, target_is_directory=True)
    return str(root)


def check_interpreters(pythons: Mapping[str, str | None], backends: Mapping[str, str]) -> dict[str, Interpreter]:
    """Each side's interpreter, checked before any worker starts: perfgate's own needs the
    side's framework here; another one is probed (once, where both sides name it)."""
    probed: dict[str, Interpreter] = {}
    chosen: dict[str, Interpreter] = {}
    for side in SIDES:
        python = pythons.get(side)
        if python is None:
            require_framework(backends[side])
            chosen[side] = OWN
            continue
        executable = locate(python, f"{side}_python")
        if executable not in probed:
            wanted = sorted({backends[other] for other in SIDES if pythons.get(other) == python})
            probed[executable] = _probe(executable, f"{side}_python", wanted)
        chosen[side] = probed[executable]
    return chosen


def worker_sys_path(interpreter: Interpreter) -> tuple[str, ...]:
    """The parent's sys.path for a worker to append (a backend of the user's own is found
    there): all of it for perfgate's own interpreter; for another, without the parent's
    installation, so that a framework missing there is never taken from the parent's."""
    if interpreter.own:
        return tuple(sys.path)
    roots = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, site.getusersitepackages())
    installed = {os.path.realpath(root) for root in roots}
    return tuple(entry for entry in sys.path if entry and not _inside(os.path.realpath(entry), installed))


def python_of(role: str, interpreters: Mapping[str, Interpreter]) -> str | None:
    """The interpreter for a worker role ("reference", "candidate-cold-start-2"); None: perfgate's own."""
    interpreter = interpreters.get(role.split("-", 1)[0], OWN)
    return None if interpreter.own else interpreter.executable


def report_pythons(interpreters: Mapping[str, Interpreter]) -> dict[str, dict[str, str]]:
    """Per side, what ModelReport.python records: both sides where either ran another
    interpreter, neither otherwise."""
    if all(interpreters[side].own for side in SIDES):
        return {side: {} for side in SIDES}
    return {side: interpreters[side].describe() for side in SIDES}


def framework_versions(models: Mapping[str, ModelReport]) -> dict[str, str]:
    """Environment.frameworks: each framework's version, or where the two sides ran the same
    framework at two versions, both: "1.20.1 (reference) vs 1.32.0 (candidate)"."""
    versions: dict[str, dict[str, str]] = {}
    for side in SIDES:
        versions.setdefault(models[side].backend.framework, {})[side] = models[side].backend.framework_version
    return {
        framework: " vs ".join(f"{version} ({side})" for side, version in by_side.items())
        if len(set(by_side.values())) > 1
        else next(iter(by_side.values()))
        for framework, by_side in versions.items()
    }


def environment_warnings(models: Mapping[str, ModelReport]) -> tuple[str, ...]:
    """Where the two workers ran in different Python environments, the report says that
    this comparison is of environments (as well as of models)."""
    pythons = {side: models[side].python for side in SIDES}
    if not all(pythons.values()) or pythons["reference"].get("prefix") == pythons["candidate"].get("prefix"):
        return ()
    sides = "; ".join(
        f"{side}: {pythons[side]['executable']} (Python {pythons[side]['version']}), "
        f"{models[side].backend.framework} {models[side].backend.framework_version}"
        for side in SIDES
    )
    return (
        f"the two models ran in different Python environments ({sides}): this compares the environments, "
        "not only the models; a change may come from either",
    )


def _inside(path: str, roots: set[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


# The probe runs as a file: any executable given as a Python gets it, and a shell running
# it stops at its first line (exit 97) instead of running the rest.
_PROBE = """''':'
exit 97
'''
import base64, json, pickle, platform, sys
answer = {"version": platform.python_version(), "prefix": sys.prefix, "executable": sys.executable}
minimum = tuple(json.loads(sys.argv[1]))
if sys.version_info[:2] >= minimum:
    import importlib.util
    try:
        import numpy
        import perfgate.worker.core
    except ImportError as exc:
        answer["missing"] = exc.name or str(exc)
    else:
        answer["numpy"] = numpy.__version__
        answer["frameworks"] = {m: importlib.util.find_spec(m) is not None for m in json.loads(sys.argv[2])}
        try:
            pickle.loads(base64.b64decode(sys.stdin.read()))
        except Exception as exc:
            answer["unpickle_error"] = "%s: %s" % (type(exc).__name__, exc)
        answer["array"] = base64.b64encode(pickle.dumps(numpy.arange(3.0))).decode()
print("perfgate-probe " + json.dumps(answer))
"""


def _probe(executable: str, api_name: str, backends: list[str]) -> Interpreter:
    given = option(api_name, executable)
    modules = sorted({m for name in backends if name in BUILTIN_BACKENDS for m in _modules(name)})
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="perfgate-probe-") as folder:
        env["PYTHONPATH"] = os.pathsep.join([source_folder(folder), *filter(None, [env.get("PYTHONPATH")])])
        script = Path(folder) / "perfgate_probe.py"
        script.write_text(_PROBE)
        parent, prctl = os.getpid(), libc_prctl()
        process = None
        try:
            with _signals_held():
                try:
                    # a session of its own: stopping its group stops its children too, which may
                    # hold the pipes; and it dies with perfgate, as the workers do, even when
                    # perfgate is killed outright (only its own children then outlive it)
                    process = subprocess.Popen(
                        [executable, str(script), json.dumps(MIN_PYTHON), json.dumps(modules)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        env=env, cwd=folder, start_new_session=True, preexec_fn=lambda: die_with_parent(parent, prctl),
                    )  # fmt: skip
                except OSError as exc:
                    raise UsageError(f"{given} cannot be run: {exc.strerror or exc}") from None
            stdout, stderr = process.communicate(base64.b64encode(pickle.dumps(np.arange(3.0))).decode(), timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise UsageError(f"{given} gave no answer within {PROBE_TIMEOUT_S:g} s, so it was stopped; is it a Python interpreter?") from None
        except BaseException:  # SIGINT or SIGTERM (Interrupted): the probe goes before perfgate does
            if process is not None:
                _stop(process)
            raise
    answer = _answer(stdout)
    if answer is None:
        last = (stderr.strip().splitlines() or [""])[-1]
        raise UsageError(f"{given} is not a Python interpreter perfgate can use (exit code {process.returncode}" + (f": {last})" if last else ")"))
    version = answer["version"]
    if tuple(int(part) for part in version.split(".")[:2]) < MIN_PYTHON:
        raise UsageError(f"{given} is Python {version}; perfgate's worker needs Python {'.'.join(map(str, MIN_PYTHON))} or later")
    if "missing" in answer:
        raise BackendUnavailableError(
            f"{given} cannot run perfgate's worker: it has no module {answer['missing']!r} "
            f"(install it: {executable} -m pip install {_pip_name(answer['missing'])})"
        )
    for name in backends:
        wanted = _modules(name)
        if wanted and not any(answer["frameworks"].get(m) for m in wanted):
            packages = " or ".join(_pip_name(m) for m in wanted)
            raise BackendUnavailableError(
                f"{given} has no {' or '.join(wanted)}, which the {name} backend needs (install it: {executable} -m pip install {packages})"
            )
    problem = answer.get("unpickle_error") or _unpickle_error(answer["array"])
    if problem:
        raise BackendUnavailableError(
            f"{given}: its numpy {answer['numpy']} and perfgate's numpy {np.__version__} cannot read each "
            f"other's arrays ({problem}); install a numpy of the same major version there"
        )
    return Interpreter(executable, version, answer["prefix"])


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back until the block ends, then handled as they would have
    been: raised inside Popen after its fork (Interrupted, from the command line's handler),
    they would leave a probe running that nothing could stop, its pid never returned. Only
    the main thread runs Python's signal handlers, so only there is anything to hold."""
    caught: list[int] = []
    previous: dict[int, Any] | None = None
    try:
        with stop_signals_handled_by(lambda signum, frame: caught.append(signum)) as previous:
            yield
    finally:  # the handlers are back: what was caught is handled as it would have been
        if caught and previous is not None:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])


def _stop(process: subprocess.Popen) -> None:
    """Kill the probe's process group and reap the probe; its pipes are closed unread (a
    child that left the group could hold them open for ever)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        try:
            pipe.close()
        except OSError:  # stdin's unsent rest: the reader is gone
            pass


def _answer(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith("perfgate-probe "):
            try:
                return json.loads(line[len("perfgate-probe ") :])
            except ValueError:
                return None
    return None


def _unpickle_error(encoded: str) -> str | None:
    try:
        pickle.loads(base64.b64decode(encoded))
    except Exception as exc:  # whatever the other numpy wrote
        return f"{type(exc).__name__}: {exc}"
    return None


def _modules(backend: str) -> tuple[str, ...]:
    entry = BUILTIN_BACKENDS.get(backend)
    if entry is None:
        return ()
    return (entry.framework_module,) if isinstance(entry.framework_module, str) else entry.framework_module


def _pip_name(module: str) -> str:
    return module.split(".")[0].replace("_", "-")

