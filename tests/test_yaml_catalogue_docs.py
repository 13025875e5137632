"""The catalogue's lists in README.md and docs/providers-yaml.md cannot go stale, and every
entry has its facts beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.yamlprov import CATALOGUE, catalogue_names, load_file

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_lists_the_catalogue() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- catalogue: checked by tests/test_yaml_catalogue_docs.py -->", 1)[1].split("<!-- /catalogue -->", 1)[0]
    listed = re.findall(r"^- `([a-z0-9_]+)` — (.+)$", block, re.MULTILINE)
    assert listed == [(name, load_file(CATALOGUE / f"{name}.yaml").definition.title) for name in catalogue_names()]


def test_the_reference_lists_the_catalogue() -> None:
    text = (ROOT / "docs" / "providers-yaml.md").read_text(encoding="utf-8").split("\n## The catalogue\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| [^|]+ \| (\w+) \| ([^|]+) \|$", text, re.MULTILINE)
    expected = []
    for name in catalogue_names():
        d = load_file(CATALOGUE / f"{name}.yaml").definition
        expected.append((name, d.auth.kind, ", ".join(a.name for a in d.actions)))
    assert [(n, k, a.strip()) for n, k, a in rows] == expected


@pytest.mark.parametrize("name", catalogue_names())
def test_every_entry_has_its_facts(name: str) -> None:
    facts = CATALOGUE / f"{name}.md"
    assert facts.exists(), f"{name}: write its facts in {facts.name}"
    assert "Sources" in facts.read_text(encoding="utf-8")


def test_the_worked_example_is_in_the_reference() -> None:
    text = (ROOT / "docs" / "providers-yaml.md").read_text(encoding="utf-8")
    assert "(examples/acme_tasks.yaml)" in text and (ROOT / "docs" / "examples" / "acme_tasks.yaml").exists()
