"""The wheel that production installs (issue 10): the service, its templates and static files and the built-in
plugins with their entry points, and nothing of development: no ``orgscim_dev`` (the dev Keycloak runner and
its realm with development secrets), no tests, no benchmarks.

The wheel is built from a copy of the working tree without ``build/`` and ``*.egg-info``: setuptools puts
whatever an earlier build left in ``build/lib`` into the next wheel, so building in place could hide or invent
files."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# dev secrets of the realm JSON (orgscim_dev/realm-orgscim.json) and of the quick start
DEV_SECRETS = (b"orgscim-dev-secret", b"orgscim-admin-dev-secret", b"realm-admin-dev-password")


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree the wheel is built from (a copy: the tests compare the wheel with this copy)."""
    src = tmp_path_factory.mktemp("wheel") / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*_cache", "instance", "out"))
    return src


@pytest.fixture(scope="module")
def wheel(src: Path) -> Iterator[zipfile.ZipFile]:
    dist = src.parent / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "--wheel-dir", str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = dist.glob("orgscim-*.whl")
    with zipfile.ZipFile(built) as zf:
        yield zf


class CaseSensitive(configparser.ConfigParser):
    """entry_points.txt as written: plugin names such as ``KEYCLOAK`` keep their case."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def names(wheel: zipfile.ZipFile) -> set[str]:
    return set(wheel.namelist())


def source_files(src: Path, folder: str, pattern: str) -> set[str]:
    """Files under ``src/folder`` as they are named in the wheel (relative to their import root)."""
    root = src / folder
    base = src / "plugins" if folder.startswith("plugins/") else src
    return {p.relative_to(base).as_posix() for p in root.rglob(pattern) if "__pycache__" not in p.parts}


def test_the_wheel_holds_only_the_service_and_its_plugins(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in names(wheel)}
    assert tops == {"orgscim", "orgscim_plugins", "orgscim-0.1.0.dist-info"}, tops


def test_no_development_tooling_or_secrets(wheel: zipfile.ZipFile) -> None:
    assert not [n for n in names(wheel) if "devserver" in n or n.startswith(("orgscim_dev", "tests/", "bench/"))]
    assert not [n for n in names(wheel) if n.endswith(".json")]  # the dev realm is the only JSON we have
    # not METADATA: it carries the README, which documents the quick start's dev realm for developers
    for name in names(wheel) - {"orgscim-0.1.0.dist-info/METADATA"}:
        data = wheel.read(name)
        assert not [s for s in DEV_SECRETS if s in data], f"{name} holds a development secret"


def test_every_module_template_and_static_file_is_shipped(wheel: zipfile.ZipFile, src: Path) -> None:
    shipped = names(wheel)
    assert source_files(src, "orgscim", "*.py") <= shipped
    assert source_files(src, "plugins/orgscim_plugins", "*.py") <= shipped
    web = source_files(src, "orgscim/web/templates", "*.html") | source_files(src, "orgscim/web/static", "*.css")
    assert web and web <= shipped, web - shipped


def test_entry_points_are_those_of_pyproject(wheel: zipfile.ZipFile, src: Path) -> None:
    project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    want = {"console_scripts": project["scripts"], **project["entry-points"]}
    parsed = CaseSensitive(delimiters=("=",))
    parsed.read_string(wheel.read("orgscim-0.1.0.dist-info/entry_points.txt").decode())
    got = {section: {k: v for k, v in parsed[section].items()} for section in parsed.sections()}
    assert got == want
    assert want["orgscim.auth_modes"] and want["orgscim.federation"] and want["console_scripts"]
