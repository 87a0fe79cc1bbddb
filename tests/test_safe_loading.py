"""Loading a model never runs code the file brings along (pickles, compiled libraries,
Keras lambdas), and a model's own errors are quoted by the line that says what went wrong.

Each hostile file here would create a marker file if it were unpickled; the tests load
them through the backends in this process, as a worker does.
"""

import io
import json
import zipfile

import pytest

from conftest import FIXTURES, run_cli
from perfgate.backends.base import BackendOptions
from perfgate.errors import ModelLoadError, WorkerError
from perfgate.worker.core import WorkerCore
from perfgate.worker.protocol import LoadRequest

torch = pytest.importorskip("torch")

EXPORTED = FIXTURES / "torch" / "mlp_reference.pt2"


class Marker:
    """Unpickling this opens (so creates) the marker file: the proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def load(path, backend="torch"):
    core = WorkerCore()
    try:
        return core.load(LoadRequest(backend, str(path), BackendOptions("cpu", 1, False, None), ()))
    finally:
        core.close()


def rewritten_pt2(target, change):
    """The shipped torch.export fixture with ``change(inner_name, bytes) -> bytes | None``
    applied to each entry (None drops it), plus whatever ``change`` adds under ``"+name"``."""
    with zipfile.ZipFile(EXPORTED) as source, zipfile.ZipFile(target, "w") as out:
        top = source.namelist()[0].split("/")[0]
        for name in source.namelist():
            data = change(name.partition("/")[2], source.read(name))
            if data is not None:
                out.writestr(name, data)
        for name, data in change.extra.items():
            out.writestr(f"{top}/{name}", data)
    return target


def test_a_pickled_module_is_refused_without_unpickling_it(tmp_path):
    marker = tmp_path / "ran"
    pickled = tmp_path / "model.pt"
    torch.save(Marker(marker), pickled)
    with pytest.raises(ModelLoadError, match=r"written by torch.save \(a pickled nn.Module or other Python objects\)"):
        load(pickled)
    assert not marker.exists()
    weights = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), weights)
    with pytest.raises(ModelLoadError, match=r"\(a state dict: weights without the model's code\); perfgate does not unpickle"):
        load(weights)


@pytest.mark.parametrize("asked", [{}, {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}], ids=["plain", "no-weights-only asked"])
def test_a_torch_export_archive_with_pickled_weights_is_refused_without_unpickling_them(tmp_path, monkeypatch, asked):
    # the user's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD does not open the door to unpickling
    for name, value in asked.items():
        monkeypatch.setenv(name, value)
    marker = tmp_path / "ran"
    payload = io.BytesIO()
    torch.save(Marker(marker), payload)

    def change(name, data):
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"]))
            config["config"][first]["use_pickle"] = True  # torch.export.load would torch.load it with weights_only=False
            return json.dumps(config).encode()
        if name == "data/weights/weight_0":
            return payload.getvalue()
        return data

    change.extra = {}
    with pytest.raises(ModelLoadError, match="holds pickled Python objects, which perfgate does not unpickle"):
        load(rewritten_pt2(tmp_path / "pickled.pt2", change))
    assert not marker.exists()


TORCH_SWITCHES = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")


@pytest.mark.parametrize(
    "asked",
    [
        {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
        {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "true"},
        {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"},
        {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"},
    ],
    ids=["no-weights-only", "no-weights-only=true", "weights-only", "both"],
)
def test_a_torch_export_program_loads_whatever_weights_only_switch_the_user_set(monkeypatch, asked):
    """torch refuses to load when both switches are set; perfgate sets one, so it sets the
    user's other one aside while loading (keeping weights-only), says so, and restores it."""
    for name in TORCH_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    for name, value in asked.items():
        monkeypatch.setenv(name, value)
    details = load(EXPORTED).backend.details
    assert details["format"] == "torch.export"
    set_aside = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in asked
    assert ("weights_only_kept" in details) == set_aside
    if set_aside:
        assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD was set aside while loading" in details["weights_only_kept"]
    import os

    assert {name: os.environ.get(name) for name in TORCH_SWITCHES} == {name: asked.get(name) for name in TORCH_SWITCHES}


def test_the_cli_measures_a_torch_export_program_with_no_weights_only_in_the_environment(tmp_path):
    # perfgate run (no budget to resolve, so no verdict that the box's noise could sway),
    # through a worker process; the saved baseline holds the backend's details
    saved = tmp_path / "baseline.json"
    result = run_cli(
        "run", "--model", str(EXPORTED), "-d", str(FIXTURES / "features.parquet"), "--input", "features=f*",
        "--rows", "200", "--time-budget", "2", "-q", "--save", str(saved), env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
    )  # fmt: skip
    assert result.returncode == 0 and "Only one of" not in result.stderr, result.stderr
    details = json.loads(saved.read_text())["model"]["backend"]["details"]
    assert "set aside" in details["weights_only_kept"]


@pytest.mark.parametrize(
    "entry, what",
    [
        ("data/constants/opaque_obj_0", "pickled Python objects"),
        ("data/aotinductor/model/model.so", r"compiled native code \(AOTInductor\)"),
    ],
)
def test_a_torch_export_archive_that_would_run_code_is_refused(tmp_path, entry, what):
    def change(name, data):
        return data

    change.extra = {entry: b"\x80\x04."}
    with pytest.raises(ModelLoadError, match=f"the archive holds {what}, which loading would run"):
        load(rewritten_pt2(tmp_path / "code.pt2", change))


def test_a_rejected_torch_export_archive_says_why_not_check_the_warnings_above(tmp_path):
    broken = tmp_path / "broken.pt2"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("broken/readme.txt", "not an exported program")
    with pytest.raises(ModelLoadError) as raised:
        load(broken)
    message = str(raised.value)
    assert "warnings above" not in message
    assert "with torch.export.load: RuntimeError: " in message and "version" in message
    misnamed = tmp_path / "torchscript.pt2"
    misnamed.write_bytes((FIXTURES / "torch" / "mlp_reference.pt").read_bytes())
    with pytest.raises(ModelLoadError, match=r"it is a TorchScript archive \(torch.jit.save\), not a torch.export program"):
        load(misnamed)


def test_the_shipped_torch_export_fixture_still_loads():
    assert load(EXPORTED).backend.details["format"] == "torch.export"


class WrongWidth(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, features):
        return self.linear(features)


class Refuses(torch.nn.Module):
    def forward(self, features):
        if bool(features.sum() > -1e9):
            raise ValueError("features must be normalized")
        return features


@pytest.mark.parametrize(
    "module, quoted",
    [
        (WrongWidth, "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x16 and 8x4)"),
        (Refuses, "ValueError: features must be normalized"),
    ],
)
def test_a_torchscript_model_s_own_error_is_quoted(tmp_path, module, quoted):
    import numpy as np

    path = tmp_path / "model.pt"
    torch.jit.script(module()).save(str(path))
    core = WorkerCore()
    try:
        core.load(LoadRequest("torch", str(path), BackendOptions("cpu", 1, False, None), ()))
        core.set_feeds(1, [{"features": np.zeros((1, 16), dtype=np.float32)}])
        with pytest.raises(WorkerError) as raised:
            core.warm_up(1, 1, 0.0, 1.0)
    finally:
        core.close()
    assert str(raised.value) == f"model {str(path)!r} failed while running: {quoted}"


def test_a_keras_file_with_python_code_in_it_is_refused(tmp_path):
    pytest.importorskip("tensorflow")
    import os
    import subprocess
    import sys

    # built in a child: keras in this process would fix the worker's TensorFlow settings
    path = tmp_path / "lambda.keras"
    marker = tmp_path / "ran"
    build = (
        "import keras, sys\n"
        "inputs = keras.Input((16,), name='features')\n"
        f"outputs = keras.layers.Lambda(lambda x: (open({str(marker)!r}, 'w'), x)[1])(inputs)\n"
        f"keras.Model(inputs, outputs).save({str(path)!r})\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", build], check=True, env=env, capture_output=True, timeout=300)
    marker.unlink(missing_ok=True)  # tracing the model at build time ran the lambda once
    with pytest.raises(ModelLoadError, match="perfgate loads .keras files in safe mode, which runs no Python code"):
        load(path, "tensorflow")
    assert not marker.exists()
