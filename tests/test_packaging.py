"""The distributions: both carry the license; the sdist carries its tests' needs.

Distributions build and test from the sdist, so it must hold everything the
test suite reads or runs: the tests with their helpers and subprocess
scripts, the benchmarks, the examples, the docs pages and the CI script.
"""

import pathlib
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Folders whose every file some test imports, runs or reads.
NEEDED_FOLDERS = ("optaxswap", "tests", "benchmarks", "examples", "docs")
NEEDED_FILES = ("LICENSE", "README.md", "pyproject.toml", ".ci/run")
# What a clone's working tree may hold besides its own files: never shipped.
NOT_SOURCE = (
    ".git",
    ".venv",
    "venv",
    "*.egg-info",
    "build",
    "dist",
    "_build",
    "__pycache__",
    "*.pyc",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    "optaxswap-demo",
)


def _source_files(root: pathlib.Path) -> set[str]:
    """The files of the needed folders and the needed files, as in a clone."""
    ignored = shutil.ignore_patterns(*NOT_SOURCE)
    files = set(NEEDED_FILES)
    for folder in NEEDED_FOLDERS:
        for path in (root / folder).rglob("*"):
            parts = path.relative_to(root).parts
            if path.is_file() and not ignored("", parts):
                files.add("/".join(parts))
    return files


@pytest.fixture(scope="module")
def distributions(tmp_path_factory) -> dict[str, pathlib.Path]:
    """An sdist and a wheel built as from a clean clone.

    The build runs on a copy: setuptools would otherwise also ship every file
    named in a stale ``*.egg-info/SOURCES.txt`` of the working tree, hiding a
    file that MANIFEST.in forgot.
    """
    source = tmp_path_factory.mktemp("clone") / "optaxswap"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp_path_factory.mktemp("dist")
    completed = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel, "clone": source}


def test_sdist_carries_everything_the_tests_need(distributions):
    with tarfile.open(distributions["sdist"]) as archive:
        members = {
            member.name.split("/", 1)[1]
            for member in archive.getmembers()
            if member.isfile()
        }
    needed = _source_files(distributions["clone"])
    assert {"tests/conftest.py", "tests/reference.py", "docs/conf.py"} <= needed
    missing = needed - members
    assert not missing, f"add these to MANIFEST.in: {sorted(missing)}"


def test_sdist_and_wheel_carry_the_apache_license(distributions):
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    with tarfile.open(distributions["sdist"]) as archive:
        (sdist_license,) = [
            member
            for member in archive.getmembers()
            if member.name.endswith("/LICENSE")
        ]
        assert archive.extractfile(sdist_license).read().decode() == license_text
    with zipfile.ZipFile(distributions["wheel"]) as archive:
        (wheel_license,) = [
            name for name in archive.namelist() if name.endswith("licenses/LICENSE")
        ]
        assert archive.read(wheel_license).decode() == license_text
