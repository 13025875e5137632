"""docs/plugins.md is the plugin author's contract; these tests keep it true.

Signatures are rebuilt from the hookspecs themselves, the worked example is the file the
hook tests run, and every name a plugin may import must be described.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pluggy
import pytest

import hub
import hub.testing
from hub import hookspecs
from hub.registry import ENTRY_POINT_GROUP, RESERVED

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "docs" / "examples" / "example_provider.py"
EXAMPLE_MARKER = "<!-- example: docs/examples/example_provider.py -->"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def hook_signatures() -> dict[str, tuple[str, ...]]:
    """Every hookspec and its argument names, as pluggy reads them from hub.hookspecs."""
    pm = pluggy.PluginManager("hub")
    pm.add_hookspecs(hookspecs)
    specs = {}
    for name, caller in vars(pm.hook).items():
        if name.startswith("_") or not caller.has_spec():
            continue
        specs[name] = (*caller.spec.argnames, *caller.spec.kwargnames)
    return specs


HOOKS = sorted(hook_signatures())


def heading(name: str) -> str:
    return f"### {name}({', '.join(hook_signatures()[name])})"


def section(text: str, title: str) -> str:
    """The text under the heading line ``title``, up to the next heading of any level."""
    start = text.index(title + "\n") + len(title) + 1
    end = re.compile(r"^#{1,3} ", re.MULTILINE).search(text, start)
    return text[start : end.start() if end else len(text)]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_the_hookspecs_are_found() -> None:
    # Guards the tests below against passing over an empty list.
    assert {"hub_provider", "hub_actions", "hub_exchange_code", "hub_check_response"} <= set(HOOKS)
    assert hook_signatures()["hub_exchange_code"] == ("provider", "code", "redirect_uri", "code_verifier")


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented_under_its_exact_signature(name: str) -> None:
    text = doc_text()
    assert heading(name) in text.splitlines(), f"docs/plugins.md needs the heading {heading(name)!r}"
    body = section(text, heading(name))
    assert "**When:**" in body, f"{name}: say when the core calls it"
    assert python_blocks(body), f"{name}: give an example"


def test_no_hook_is_documented_that_does_not_exist() -> None:
    documented = re.findall(r"^### (hub_\w+)\((.*)\)$", doc_text(), re.MULTILINE)
    assert documented, "no hook headings found"
    for name, args in documented:
        assert name in HOOKS, f"docs/plugins.md documents {name}, which hub.hookspecs does not define"
        assert f"### {name}({args})" == heading(name)
    assert len(documented) == len(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test_of_its_own(name: str) -> None:
    pattern = re.compile(rf"^\s*(async\s+)?def test_hook_{name}\(", re.MULTILINE)
    found = [p.name for p in (ROOT / "tests").rglob("test_*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert found, f"no test named test_hook_{name} in tests/"


def test_the_complete_example_is_the_tested_file() -> None:
    text = doc_text()
    assert text.count(EXAMPLE_MARKER) == 1
    after = text[text.index(EXAMPLE_MARKER) + len(EXAMPLE_MARKER) :]
    match = re.match(r"\s*```python\n(.*?)^```$", after, re.MULTILINE | re.DOTALL)
    assert match, f"a python block must follow {EXAMPLE_MARKER}"
    assert match.group(1) == EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(hub.__all__))
def test_every_public_name_is_documented(name: str) -> None:
    assert re.search(rf"`(hub\.)?{re.escape(name)}\b", doc_text()), f"docs/plugins.md does not describe hub.{name}"


def test_every_python_example_is_valid_python() -> None:
    blocks = python_blocks(doc_text())
    assert len(blocks) > len(HOOKS)
    for block in blocks:
        compile(block, str(DOC), "exec")


def test_every_link_within_the_page_has_a_target() -> None:
    text = doc_text()

    def slug(title: str) -> str:  # GitHub's heading anchors
        return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")

    targets = {slug(t) for t in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}
    targets |= set(re.findall(r'<a id="([^"]+)"></a>', text))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links, "no internal links found"
    assert links <= targets, f"links without a target: {sorted(links - targets)}"


def test_the_documented_entry_point_group_is_the_one_the_loader_reads() -> None:
    assert f'[project.entry-points."{ENTRY_POINT_GROUP}"]' in doc_text()


def test_the_documented_reserved_names_are_the_reserved_names() -> None:
    line = next(p for p in doc_text().split("\n\n") if p.startswith("Reserved action names:"))
    assert set(re.findall(r"`(\w+)`", line)) == set(RESERVED)


@pytest.mark.parametrize(
    ("title", "cls"),
    [
        ("### hub_provider()", hub.ProviderInfo),
        ("## Actions", hub.Action),
        ("## Actions", hub.CallContext),
    ],
)
def test_every_field_of_the_main_types_is_in_its_table(title: str, cls: type) -> None:
    body = section(doc_text(), title)
    rows = set(re.findall(r"^\| `(\w+)", body, re.MULTILINE))
    rows |= {name for cell in re.findall(r"^\| (`\w+`(?:, `\w+`)+) \|", body, re.MULTILINE) for name in re.findall(r"`(\w+)`", cell)}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in rows]
    assert not missing, f"{cls.__name__} fields missing from the table under {title!r}: {missing}"


@pytest.mark.parametrize("name", sorted(hub.testing.__all__))
def test_every_name_of_the_kit_is_documented(name: str) -> None:
    assert re.search(rf"`(hub\.testing\.)?{re.escape(name)}\b", doc_text()), f"docs/plugins.md does not describe hub.testing.{name}"


class _ViewProbe:
    @hub.hookimpl
    def hub_provider(self) -> hub.ProviderInfo:
        return hub.ProviderInfo(name="probe", title="Probe", endpoints=hub.Endpoints(api="https://probe.invalid"))


async def test_every_field_of_the_integration_view_is_in_its_table(make_hub: Any) -> None:
    client = await make_hub(_ViewProbe(), hub.testing.FakeProvider())
    assert (await hub.testing.connect(client, "probe", "alice")).status == 200
    resp = await client.get("/api/integrations/probe", headers=hub.testing.auth_headers("alice"))
    view = (await resp.json())["data"]
    body = section(doc_text(), "## The integration view")
    rows = {name for cell in re.findall(r"^\| ([^|]+) \|", body, re.MULTILINE) for name in re.findall(r"`(\w+)`", cell)}
    assert view and not set(view) - rows, f"integration view fields missing from its table: {sorted(set(view) - rows)}"
    account = re.search(r"^\| `account` \| (.*) \|$", body, re.MULTILINE)
    assert account and all(f"`{key}`" in account[1] for key in view["account"]), view["account"]
