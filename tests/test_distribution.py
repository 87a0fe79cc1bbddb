"""What a release publishes. The slow tests build the sdist and wheel from a clean copy of
the tree (as a fresh clone builds them, with no stale build/ or egg-info to leak files in),
check them with twine, look inside them for every module, the config schema, the license
and the metadata PyPI shows, and install the wheel into a fresh environment to run the
demo from outside the checkout (.github/release/check_wheel.py, which CI's dist job and the
release workflow run too). The others check the release's files: the license, the
changelog, the version's one place, and the workflows that build and publish."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import perfgate
from conftest import ROOT, load_script
from perfgate.configfile import tomllib

CHECK_WHEEL = ROOT / ".github" / "release" / "check_wheel.py"
WORKFLOWS = ROOT / ".github" / "workflows"
VERSION = perfgate.__version__
# the canonical text of https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
COPYRIGHT = "Copyright 2026 the perfgate authors"
# what a fresh clone would not hold, or holds only after building or testing
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                        ".hypothesis")  # fmt: skip


def load_yaml(path: Path):
    return YAML(typ="safe").load(path.read_text())


def check_wheel_module():
    return load_script(CHECK_WHEEL)


def package_files() -> set[str]:
    """Every file of the perfgate package in the tree, modules and data alike, as a wheel names it."""
    return {path.relative_to(ROOT).as_posix() for path in (ROOT / "perfgate").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}  # fmt: skip


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel, built as the release builds them: `python -m build` (the sdist,
    then the wheel from the unpacked sdist), each in an isolated environment."""
    root = tmp_path_factory.mktemp("dist")
    source, out = root / "source", root / "dist"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE, symlinks=True)
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("*.whl")
    return wheel


# --- the built distribution ---------------------------------------------------------------


@pytest.mark.slow
def test_the_sdist_and_wheel_are_named_for_the_version_and_pass_twine_check(dist):
    assert sorted(path.name for path in dist.iterdir()) == [f"perfgate-{VERSION}-py3-none-any.whl", f"perfgate-{VERSION}.tar.gz"]
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package_the_license_and_the_entry_points(dist):
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = set(wheel.namelist())
        info = f"perfgate-{VERSION}.dist-info"
        license_text = wheel.read(f"{info}/licenses/LICENSE")
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    # modules and the data perfgate reads at run time (the config schema): a file left out of
    # package data would be missing only where perfgate is installed from the wheel
    assert "perfgate/schemas/config.schema.json" in package_files()
    assert {name for name in names if name.startswith("perfgate/")} == package_files()
    assert {name.split("/")[0] for name in names} == {"perfgate", info}  # no tests, fixtures or benchmarks
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert "[console_scripts]\nperfgate = perfgate.cli:main" in entry_points
    assert "[pytest11]\nperfgate = perfgate.integrations.pytest_plugin" in entry_points


@pytest.mark.slow
def test_the_wheel_s_metadata_is_what_pypi_shows(dist):
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        metadata = Parser().parsestr(wheel.read(f"perfgate-{VERSION}.dist-info/METADATA").decode())
    assert metadata["Name"] == "perfgate" and metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "Apache-2.0" and metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == ">=3.10"
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = metadata.get_all("Classifier")
    # the Pythons it claims are the Pythons CI tests
    tested = load_yaml(WORKFLOWS / "ci.yml")["jobs"]["test"]["strategy"]["matrix"]["python-version"]
    claimed = [c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")]
    assert claimed == tested and min(tested) == "3.10"
    assert not any(c.startswith("License ::") for c in classifiers)  # the expression says it; PEP 639 forbids both
    assert set(metadata.get_all("Provides-Extra")) >= {"onnx", "torch", "tensorflow", "tensorflow-cpu", "all"}
    assert metadata["Description-Content-Type"] == "text/markdown" and metadata.get_payload().startswith("# perfgate")


@pytest.mark.slow
def test_the_sdist_holds_the_package_the_license_and_the_build_configuration(dist):
    (sdist,) = dist.glob("*.tar.gz")
    top = f"perfgate-{VERSION}/"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(top) for name in archive.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "CHANGELOG.md", "ARCHITECTURE.md", "action.yml"} <= names
    assert package_files() <= names
    # the documentation the README links to, so that a package built from the sdist can ship it
    docs = {path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").rglob("*") if path.is_file()}
    assert docs and docs <= names, sorted(docs - names)


@pytest.mark.slow
@pytest.mark.e2e
def test_the_wheel_installed_in_a_fresh_environment_runs_the_demo_from_outside_the_checkout(dist):
    done = subprocess.run([sys.executable, str(CHECK_WHEEL), str(dist)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(f"perfgate {VERSION} from ")]
    where = Path(line.removeprefix(f"perfgate {VERSION} from "))
    assert "site-packages" in where.parts and not where.is_relative_to(ROOT)
    assert "demo: A/A pair exited 0 (expected 0: pass), slow model exited 1 (expected 1: regression)" in done.stdout


# --- the release's files ----------------------------------------------------------------------


def test_the_version_is_written_once_in_perfgate_and_read_by_the_build():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "perfgate.__version__"}
    assert [line for line in (ROOT / "perfgate" / "__init__.py").read_text().splitlines()
            if line.startswith("__version__ =")] == [f'__version__ = "{VERSION}"']  # a literal the build reads without importing  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "perfgate", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip() == f"perfgate, version {VERSION}"


def test_the_license_is_the_apache_2_0_text_the_metadata_names():
    text = (ROOT / "LICENSE").read_text()
    assert text.count(COPYRIGHT) == 1
    canonical = text.replace(COPYRIGHT, "Copyright [yyyy] [name of copyright owner]").encode()
    assert hashlib.sha256(canonical).hexdigest() == APACHE_2_0_SHA256
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"


def test_the_changelog_has_an_unreleased_section_and_one_for_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## [Unreleased]"
    assert any(line == f"## [{VERSION}]" or line.startswith(f"## [{VERSION}] - ") for line in headings)
    assert f"\n[{VERSION}]: https://" in text and "\n[Unreleased]: https://" in text


def test_a_release_tag_must_name_the_built_version_and_the_changelog_must_date_it():
    module = check_wheel_module()
    check = module.check_tag
    dated = "## [Unreleased]\n\n## [0.2.0] - 2027-01-15\n\n## [0.1.0] - 2026-12-07\n"
    check("v0.2.0", "0.2.0", dated)
    check("v0.1.0", "0.1.0", dated)
    for tag, version, changelog in (
        ("v0.2.1", "0.2.0", dated),          # the tag is not the version built
        ("0.2.0", "0.2.0", dated),           # a tag without its v
        ("v0.3.0", "0.3.0", dated),          # no section for the version
        ("v0.2.0", "0.2.0", "## [0.2.0]\n"),  # a section still being prepared
        ("v0.2.0", "0.2.0", "## [0.2.0] - soon\n"),
        ("v0.2", "0.2", dated),              # 0.2 is not 0.2.0's section
    ):  # fmt: skip
        with pytest.raises(module.CheckFailed):
            check(tag, version, changelog)


def test_the_check_takes_one_pure_python_wheel_and_its_sdist(tmp_path):
    module = check_wheel_module()
    cases = {
        "one of each": (["perfgate-0.1.0-py3-none-any.whl", "perfgate-0.1.0.tar.gz"], "0.1.0"),
        "two wheels": (["perfgate-0.1.0-py3-none-any.whl", "perfgate-0.0.9-py3-none-any.whl", "perfgate-0.1.0.tar.gz"], None),
        "no sdist": (["perfgate-0.1.0-py3-none-any.whl"], None),
        "other versions": (["perfgate-0.1.0-py3-none-any.whl", "perfgate-0.1.1.tar.gz"], None),
        "a platform wheel": (["perfgate-0.1.0-cp311-cp311-linux_x86_64.whl", "perfgate-0.1.0.tar.gz"], None),
    }
    for case, (names, version) in cases.items():
        folder = tmp_path / case.replace(" ", "-")
        folder.mkdir()
        for name in names:
            (folder / name).touch()
        if version is None:
            with pytest.raises(module.CheckFailed):
                module.built_version(folder)
        else:
            assert module.built_version(folder) == (folder / names[0], version), case


def test_ci_builds_checks_and_runs_the_demo_from_the_wheel_on_every_tested_python():
    jobs = load_yaml(WORKFLOWS / "ci.yml")["jobs"]
    assert jobs["dist"]["strategy"]["matrix"]["python-version"] == jobs["test"]["strategy"]["matrix"]["python-version"]
    runs = [step.get("run", "") for step in jobs["dist"]["steps"]]
    assert any("python -m build" in run for run in runs)
    assert "python -m twine check --strict dist/*" in runs
    assert "python .github/release/check_wheel.py dist" in runs


def test_the_release_workflow_publishes_a_checked_tag_with_trusted_publishing():
    workflow = load_yaml(WORKFLOWS / "release.yml")
    assert workflow["on"] == {"push": {"tags": ["v*"]}}  # nothing else publishes
    assert workflow["permissions"] == {"contents": "read"}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    build_runs = [step.get("run", "") for step in build["steps"]]
    assert "python -m twine check --strict dist/*" in build_runs
    assert any(run.startswith("python .github/release/check_wheel.py dist --tag ") for run in build_runs)
    assert "permissions" not in build  # the build job cannot mint a publishing token
    assert publish["needs"] == "build"
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    (upload,) = [step for step in publish["steps"] if step.get("uses", "").startswith("pypa/gh-action-pypi-publish@")]
    assert "with" not in upload or not {"password", "user"} & set(upload["with"])  # no stored token
    assert not any("run" in step for step in publish["steps"])  # it runs nothing of the repository's


def test_the_build_tools_ci_installs_are_the_test_extra_s():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    wanted = [line for line in (ROOT / ".github" / "release" / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")]  # fmt: skip
    assert wanted == ["build>=1.2", "twine>=6.1"] and set(wanted) <= set(extra)


def test_the_release_files_are_not_ignored_by_git():
    """.gitignore's dist/ matches a folder named dist anywhere (.github/dist/ too): a file there
    would be missing from every clone, and CI's dist job would not find its check."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    files = [".github/release/check_wheel.py", ".github/release/requirements.txt", ".github/workflows/release.yml",
             "LICENSE", "CHANGELOG.md"]  # fmt: skip
    done = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == "", done.stdout  # 1: none of them is ignored
