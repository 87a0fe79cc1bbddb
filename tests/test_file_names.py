"""File names are bytes on Linux: a Latin-1 name, or any non-ASCII name under LC_ALL=C
with PYTHONUTF8=0, reaches perfgate as a str with lone surrogates (PEP 383). Such a name
works end to end (the data, a model through its worker, the report's file); messages and
the JSON report show it as printable UTF-8 (undecodable bytes as \\xNN). A name the system
cannot take (too long), or a model that is not there, is one line naming the file."""

import json
import os
import shutil

import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli

MODEL = str(FIXTURES / "mlp_reference.onnx")
DATA = str(FIXTURES / "features.parquet")
QUICK = ("--input", "features=f*", "--rows", "200", "--cold-starts", "0", "--time-budget", "2",  # a budget no noise refuses
         "--max-latency-increase", "1000%", "-q")  # fmt: skip
LOCALES = {"C": {"LC_ALL": "C", "PYTHONUTF8": "0"}, "C.UTF-8": {"LC_ALL": "C.UTF-8", "PYTHONUTF8": "0"}}
LATIN_1 = "donn\xe9es".encode("latin-1")  # b"donn\xe9es": not UTF-8
UTF_8 = "données".encode()
SHOWN = {LATIN_1: "donn\\xe9es", UTF_8: "données"}  # how messages and reports write each


def copied(source, folder: bytes, name: bytes) -> bytes:
    target = os.path.join(folder, name)
    shutil.copy(os.fsencode(source), target)
    return target


@pytest.mark.parametrize("name", [LATIN_1, UTF_8], ids=["latin-1", "utf-8"])
@pytest.mark.parametrize("locale", sorted(LOCALES))
def test_an_a_a_pair_runs_on_files_with_names_that_are_not_text(tmp_path, locale, name):
    """The data, the candidate model and the JSON report all under the odd name: exit 0,
    the report written where asked, valid UTF-8, naming the files printably."""
    folder = os.fsencode(tmp_path)
    data = copied(DATA, folder, name + b".parquet")
    model = copied(MODEL, folder, b"mod" + name + b".onnx")
    report = os.path.join(folder, b"rapport-" + name + b".json")
    result = run_cli("compare", "-r", MODEL, "-c", model, "-d", data, *QUICK, "--json", report, env=LOCALES[locale])
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr
    written = json.loads(open(report, "rb").read().decode("utf-8"))  # strict: valid UTF-8
    assert written["verdict"] in ("pass", "inconclusive")  # an A/A pair, on whatever noise the machine has
    assert written["compared"]["data"]["path"].endswith(f"/{SHOWN[name]}.parquet")
    assert written["compared"]["candidate"]["path"].endswith(f"/mod{SHOWN[name]}.onnx")
    # the terminal report and the progress lines name the file as the JSON report does
    assert f"{SHOWN[name]}.parquet (" in result.stdout, result.stdout
    assert "\\udc" not in result.stdout + result.stderr


def test_a_model_inside_a_folder_whose_name_is_not_text_runs(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"mod\xe8les")
    os.mkdir(folder)
    model = copied(MODEL, folder, b"model.onnx")
    result = run_cli("compare", "-r", model, "-c", MODEL, "-d", DATA, *QUICK, env=LOCALES["C"])
    assert result.returncode == 0, result.stderr


def test_a_broken_model_with_a_name_that_is_not_text_is_named_not_its_symlink(tmp_path):
    broken = os.path.join(os.fsencode(tmp_path), b"cass\xe9.onnx")
    with open(broken, "wb") as file:
        file.write(b"not a model" * 100)
    result = run_cli("compare", "-r", MODEL, "-c", broken, "-d", DATA, *QUICK, env=LOCALES["C.UTF-8"])
    assert_one_line_error(result, 3, "cannot load model '")
    assert "cass\\xe9.onnx': not a valid ONNX file" in result.stderr and "perfgate-name-" not in result.stderr


def test_missing_files_with_names_that_are_not_text_are_named_printably(tmp_path):
    folder = os.fsencode(tmp_path)
    missing_data = run_cli("compare", "-r", MODEL, "-c", MODEL, "-d", os.path.join(folder, b"absent\xe9.parquet"), *QUICK,
                           env=LOCALES["C"])  # fmt: skip
    assert_one_line_error(missing_data, 3, "absent\\xe9.parquet': no such file")
    missing_model = run_cli("compare", "-r", MODEL, "-c", os.path.join(folder, b"absent\xe9.onnx"), "-d", DATA, *QUICK,
                            env=LOCALES["C"])  # fmt: skip
    assert_one_line_error(missing_model, 3, "absent\\xe9.onnx': no such file")


def test_a_uri_with_bytes_that_are_not_text_is_a_usage_error():
    result = run_cli("compare", "-r", MODEL, "-c", MODEL, "-d", b"s3://bucket/donn\xe9es.parquet", *QUICK, env=LOCALES["C"])
    assert_one_line_error(result, 2, "cannot read data 's3://bucket/donn\\xe9es.parquet': a URI must be UTF-8 text")


@pytest.mark.parametrize("suffix", [".onnx", ".ort", ".pt", ".pt2", ".keras", ".tflite"])
def test_a_missing_model_is_the_same_line_for_every_framework_before_any_worker_starts(tmp_path, suffix):
    absent = str(tmp_path / f"absent{suffix}")
    report = tmp_path / "report.json"
    result = run_cli("compare", "-r", MODEL, "-c", absent, "-d", DATA, *QUICK, "--json", str(report))
    assert_one_line_error(result, 3, f"candidate: cannot load model '{absent}': no such file")
    assert "loading models" not in result.stderr and "NO_SUCHFILE" not in result.stderr
    assert json.loads(report.read_text())["verdict"] == "error"


def test_a_missing_model_whose_extension_no_backend_knows_is_a_usage_error_first(tmp_path):
    result = run_cli("compare", "-r", MODEL, "-c", str(tmp_path / "absent.savedmodel"), "-d", DATA, *QUICK)
    assert_one_line_error(result, 2, "cannot tell which backend runs")


def test_run_says_a_missing_model_is_missing():
    result = run_cli("run", "--model", "absent.onnx", "-d", DATA, "--input", "features=f*", "--time-budget", "2", "-q")
    assert_one_line_error(result, 3, "model: cannot load model 'absent.onnx': no such file")


def test_names_are_shown_printably_and_handed_to_frameworks_natively(tmp_path):
    from perfgate.backends.paths import framework_path, is_native, printable, shown

    assert printable("donn\udce9es") == "donn\\xe9es" and printable("donn\udcc3\udca9es") == "données"
    assert printable("a\nb") == "a\\nb" and shown("x" * 5000).count("x") == 120
    assert is_native("données") and not is_native("donn\udce9es")
    odd = os.fsdecode(copied(MODEL, os.fsencode(tmp_path), b"mod\xe8le.onnx"))
    alias = framework_path(odd)
    assert is_native(alias) and os.path.samefile(alias, odd) and alias.endswith(".onnx")
    inside = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"d\xe9p\xf4t"))
    os.mkdir(inside)
    nested = os.path.join(inside, "model.onnx")
    shutil.copy(MODEL, nested)
    linked = framework_path(nested)
    assert is_native(linked) and os.path.samefile(linked, nested)
    assert os.path.samefile(os.path.dirname(linked), inside)  # files beside the model are found beside it
    assert framework_path(MODEL) == MODEL


TOO_LONG = "x" * 5000  # a name over NAME_MAX (255 bytes): ENAMETOOLONG


@pytest.mark.parametrize(
    "where, args, fragment",
    [
        ("model", ("-r", MODEL, "-c", f"/tmp/{TOO_LONG}.onnx", "-d", DATA), "cannot load model '/tmp/xxx"),
        ("reference", ("-r", f"{TOO_LONG}.pt2", "-c", MODEL, "-d", DATA), "cannot load model 'xxx"),
        ("data", ("-r", MODEL, "-c", MODEL, "-d", f"/tmp/{TOO_LONG}.parquet"), "cannot read data '/tmp/xxx"),
        ("candidate data", ("-r", MODEL, "-c", MODEL, "-d", DATA, "--candidate-data", f"{TOO_LONG}.parquet"),
         "cannot read data 'xxx"),
    ],
)  # fmt: skip
def test_a_path_too_long_for_the_system_is_one_shortened_line_naming_it(where, args, fragment):
    result = run_cli("compare", *args, *QUICK)
    assert_one_line_error(result, 3, fragment)
    assert "File name too long" in result.stderr and "…" in result.stderr and len(result.stderr) < 400


def test_a_report_path_too_long_for_the_system_is_one_line(tmp_path):
    result = run_cli("compare", "-r", MODEL, "-c", MODEL, "-d", DATA, *QUICK, "--json", str(tmp_path / f"{TOO_LONG}.json"))
    assert_one_line_error(result, 3, "cannot write the JSON report to")
    assert "File name too long" in result.stderr and "…" in result.stderr and len(result.stderr) < 400


def test_run_names_a_model_path_too_long_in_one_line():
    result = run_cli("run", "--model", f"{TOO_LONG}.onnx", "-d", DATA, "--input", "features=f*", "--time-budget", "2", "-q")
    assert_one_line_error(result, 3, "cannot load model 'xxx")
    assert "File name too long" in result.stderr
