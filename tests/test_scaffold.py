"""``hub new-provider``: the command's checks and output, the package it writes, and (marked
``installs``, run by scripts/test like every test) that package installed offline into a
virtual environment of its own, where its tests pass."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import hub
import hub.testing
from hub.cli import main
from hub.cli.scaffold import render
from hub.registry import PROVIDER_NAME_RULE, Registry

FILES = [
    "README.md",
    "hub_acme/__init__.py",
    "hub_acme/fake.py",
    "pyproject.toml",
    "tests/test_actions.py",
    "tests/test_contract.py",
]


def scaffold(*args: str) -> Result:
    return CliRunner().invoke(main, ["new-provider", *args], catch_exceptions=False)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_writes_the_package_and_prints_the_next_three_steps(in_tmp: Path) -> None:
    result = scaffold("acme")
    assert result.exit_code == 0, result.output
    target = in_tmp / "hub-acme"
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == FILES
    assert result.output.endswith("Next steps:\n  1. cd hub-acme\n  2. pip install -e '.[test]'\n  3. pytest\n")
    for name in FILES:
        assert f"  {name}\n" in result.output
    project = tomllib.loads((target / "pyproject.toml").read_text())
    assert project["project"]["name"] == "hub-acme"
    assert project["project"]["entry-points"]["hub.providers"] == {"acme": "hub_acme"}
    assert project["project"]["dependencies"] == ["integration-hub>=0.1,<0.2"]
    assert "pytest-asyncio>=0.23" in project["project"]["optional-dependencies"]["test"]
    assert project["tool"]["pytest"]["ini_options"]["asyncio_mode"] == "auto"


@pytest.mark.parametrize("name", ["Acme", "1acme", "ac-me", "_acme", "a" * 65, "", "acme\n", "ac me"])
def test_a_name_the_registry_would_refuse_is_refused(in_tmp: Path, name: str) -> None:
    result = scaffold(name)
    assert result.exit_code == 2
    assert f"NAME {name!r} cannot be a provider's name: {PROVIDER_NAME_RULE}" in result.output
    assert list(in_tmp.iterdir()) == []
    # The same rule as the loader's: an entry point of that name is a recorded failure.
    registry = Registry()
    assert registry.add(name, object()) is None
    assert registry.failures[-1].error == PROVIDER_NAME_RULE


@pytest.mark.parametrize("name", ["a", "crm2", "my_crm", "x" * 64])
def test_every_name_the_registry_accepts_is_accepted(in_tmp: Path, name: str) -> None:
    assert scaffold(name, "--dir", "out").exit_code == 0
    assert (in_tmp / "out" / f"hub_{name}" / "__init__.py").is_file()


def test_an_existing_folder_is_left_alone_unless_forced(in_tmp: Path) -> None:
    target = in_tmp / "mine"
    target.mkdir()
    (target / "pyproject.toml").write_text("# my own\n")
    (target / "NOTES.txt").write_text("keep me\n")
    refused = scaffold("acme", "--dir", "mine")
    assert refused.exit_code == 2
    assert "'mine' already exists and is not empty" in refused.output and "--force" in refused.output
    assert (target / "pyproject.toml").read_text() == "# my own\n"
    assert not (target / "hub_acme").exists()

    forced = scaffold("acme", "--dir", "mine", "--force")
    assert forced.exit_code == 0, forced.output
    assert "  1. cd mine\n" in forced.output
    assert 'acme = "hub_acme"' in (target / "pyproject.toml").read_text()
    assert (target / "NOTES.txt").read_text() == "keep me\n"  # files of other names are kept


def test_an_empty_folder_is_used_and_a_file_is_refused(in_tmp: Path) -> None:
    (in_tmp / "empty").mkdir()
    assert scaffold("acme", "--dir", "empty").exit_code == 0
    (in_tmp / "afile").write_text("")
    result = scaffold("acme", "--dir", "afile")
    assert result.exit_code == 2
    assert "afile" in result.output


def test_a_name_already_installed_gets_a_note(in_tmp: Path) -> None:
    result = scaffold("slack")
    assert result.exit_code == 0
    assert "already offers provider 'slack'" in result.output


def _imports(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_the_package_uses_only_the_public_api() -> None:
    files = render("acme")
    hub_names = {i for path, text in files.items() if path.endswith(".py") for i in _imports(text) if i.startswith("hub.")}
    public = {f"hub.{name}" for name in hub.__all__} | {f"hub.testing.{name}" for name in hub.testing.__all__}
    assert hub_names and hub_names <= public, sorted(hub_names - public)
    # The provider itself needs only hub; hub.testing is for the fake and the tests.
    assert not any(i.startswith("hub.testing") for i in _imports(files["hub_acme/__init__.py"]))


@pytest.mark.parametrize("name", ["acme", "my_crm"])
def test_the_package_is_clean_python(tmp_path: Path, name: str) -> None:
    assert scaffold(name, "--dir", str(tmp_path / "out")).exit_code == 0
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(tmp_path / "out")], capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


def test_the_provider_loads_with_a_read_and_a_write_action(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A name no other test imports, so that this module is fresh.
    assert scaffold("scaffold_probe", "--dir", str(tmp_path)).exit_code == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module("hub_scaffold_probe")
        registry = Registry(strict=True)
        loaded = registry.add("scaffold_probe", module)
    finally:
        for name in [m for m in sys.modules if m.startswith("hub_scaffold_probe")]:
            del sys.modules[name]
    assert loaded is not None and not registry.failures
    methods = {a.method for a in loaded.actions}
    assert {"GET", "POST"} <= methods
    for action in loaded.actions:
        assert action.examples and action.output_schema and action.input_schema.get("properties"), action.name


def _layered_venv(path: Path) -> Path:
    """A virtual environment over the suite's own: ``venv --system-site-packages`` from inside a
    venv would layer on the base interpreter, so a .pth file adds the suite's site-packages
    (its own .pth files included) instead. pip and setuptools come from there too: no network."""
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    suite = sysconfig.get_paths()["purelib"]
    Path(site, "_suite_site_packages.pth").write_text(f"import site; site.addsitedir({suite!r})\n")
    return python


@pytest.mark.installs
def test_the_package_passes_its_own_tests_once_installed(tmp_path: Path) -> None:
    target = tmp_path / "hub-acme"
    assert scaffold("acme", "--dir", str(target)).exit_code == 0
    python = _layered_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), *args], cwd=target, env=env, capture_output=True, text=True, timeout=600)

    install = run("-m", "pip", "install", "--disable-pip-version-check", "--no-index", "--no-build-isolation", "-e", ".[test]")
    assert install.returncode == 0, install.stdout + install.stderr
    listed = run("-m", "hub", "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "acme" in {p["name"] for p in json.loads(listed.stdout)["providers"]}  # found through its entry point
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout and "error" not in tests.stdout.lower()
