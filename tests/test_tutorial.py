"""docs/plugins.md's tutorial, run as written: its console commands in order, and its edits
where the ``<!-- tutorial: FILE end|after "TEXT" [indent N] -->`` marker before a code block
says to put them. A command or marker this test cannot run fails it, so the tutorial can
only show what works.

``pip install -e '.[test]'`` is stood in for by putting the package on ``PYTHONPATH`` (the
real offline install is tests/test_scaffold.py's ``installs`` test); ``hub`` runs the
command in this process, and its printed output must be what the tutorial shows.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
BLOCK = re.compile(r"(?:<!-- tutorial: (?P<marker>.+?) -->\n)?^```(?P<lang>\w+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r'^(?P<path>\S+) (?:end|after "(?P<anchor>[^"]+)")(?: indent (?P<indent>\d+))?$')


def tutorial() -> str:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index("\n# Tutorial: "), text.index("\n# Reference\n")
    return text[start:end]


def edit(root: Path, marker: str, code: str) -> None:
    match = MARKER.match(marker)
    assert match, f"unreadable tutorial marker: {marker!r}"
    path = root / match["path"]
    code = textwrap.indent(code, " " * int(match["indent"] or 0))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if match["anchor"] is None:
        lines += ["\n\n", code] if match["indent"] is None else ["\n", code]
    else:
        hits = [i for i, line in enumerate(lines) if match["anchor"] in line]
        assert len(hits) == 1, f"{match['path']}: {match['anchor']!r} must be on exactly one line, found {len(hits)}"
        lines.insert(hits[0] + 1, code)
    path.write_text("".join(lines), encoding="utf-8")


def commands(body: str) -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of a console block with the output lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command in a console block: {line!r}"
            steps[-1][1].append(line)
    return steps


def test_the_tutorial_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd, installed, ran = tmp_path, [], []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS",)}
    for block in BLOCK.finditer(tutorial()):
        if block["marker"]:
            assert block["lang"] == "python", "only python blocks are edits"
            edit(cwd, block["marker"], block["body"])
            ran.append("edit " + block["marker"])
            continue
        if block["lang"] != "console":
            continue  # an illustration (a config, a fragment to adapt), not a step
        for command, shown in commands(block["body"]):
            argv = shlex.split(command)
            ran.append(argv[0])
            if argv[0] == "hub":
                monkeypatch.chdir(cwd)
                result = CliRunner().invoke(main, argv[1:], catch_exceptions=False)
                assert result.exit_code == 0, result.output
                if shown:
                    assert result.output.rstrip("\n").splitlines() == shown, "the tutorial shows other output than the command prints"
            elif argv[0] == "cd":
                cwd = cwd / argv[1]
                assert cwd.is_dir(), command
            elif argv[:3] == ["pip", "install", "-e"] and argv[3] == ".[test]":
                installed.append(str(cwd))
            elif argv[0] == "pytest":
                assert str(cwd) in installed, "pytest before the package is installed"
                run = subprocess.run(
                    [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv[1:]], cwd=cwd,
                    env={**env, "PYTHONPATH": os.pathsep.join(installed)}, capture_output=True, text=True, timeout=600,
                )
                assert run.returncode == 0, f"$ {command}\n" + run.stdout[-4000:] + run.stderr[-2000:]
                assert " passed" in run.stdout and "failed" not in run.stdout
                if shown:  # the counts the tutorial shows (not the timing)
                    counts = re.match(r"[\d\w, ]*? in ", shown[-1])
                    assert counts and counts[0] in run.stdout, f"$ {command}: the tutorial shows {shown[-1]!r}"
            else:
                pytest.fail(f"the tutorial shows a command this test does not know how to run: {command!r}")
    # Guards against a tutorial whose blocks this test no longer finds.
    assert ran[:5] == ["hub", "cd", "pip", "pytest", "edit hub_acme/__init__.py end"], ran
    assert ran[-1] == "pytest" and len([r for r in ran if r.startswith("edit ")]) == 4, ran

