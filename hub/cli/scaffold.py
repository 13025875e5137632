"""``hub new-provider``: a new provider plugin package, written from the templates in
``templates/provider`` (shipped as package data).

Each ``*.tmpl`` file becomes the file of the same path without ``.tmpl``, its folder
``package`` becoming the Python package (``hub_<name>``); ``$name``-style placeholders are
filled by :func:`placeholders`. A placeholder the templates use but this module does not
fill is an error, never a ``$`` left in the output.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from string import Template

import click

from ..registry import ENTRY_POINT_GROUP, PROVIDER_NAME, PROVIDER_NAME_RULE
from .common import fail

SUFFIX = ".tmpl"


def placeholders(name: str) -> dict[str, str]:
    """What the templates may use, for provider ``name``."""
    words = name.split("_")
    title = " ".join(word.capitalize() for word in words if word)
    try:
        major, minor = importlib.metadata.version("integration-hub").split(".")[:2]
        requirement = f"integration-hub>={major}.{minor},<{major}.{int(minor) + 1}"
    except (importlib.metadata.PackageNotFoundError, ValueError):  # a source tree run without installing
        requirement = "integration-hub"
    return {
        "name": name,
        "title": title,
        "package": f"hub_{name}",
        "dist": f"hub-{name.replace('_', '-')}",
        "host": name.replace("_", "-"),
        "fake_class": "Fake" + title.replace(" ", ""),
        "hub_requirement": requirement,
    }


def templates(root: Traversable | None = None, prefix: PurePosixPath = PurePosixPath()) -> Iterator[tuple[PurePosixPath, str]]:
    """Every template as (its path under the template folder, its text), in a stable order."""
    root = root or files(__package__).joinpath("templates", "provider")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from templates(entry, prefix / entry.name)
        elif entry.name.endswith(SUFFIX):
            yield prefix / entry.name, entry.read_text(encoding="utf-8")


def render(name: str) -> dict[str, str]:
    """The package's files for provider ``name``: relative path -> text."""
    values = placeholders(name)
    out: dict[str, str] = {}
    for path, text in templates():
        parts = [values["package"] if part == "package" else part for part in path.parts]
        target = str(PurePosixPath(*parts))[: -len(SUFFIX)]
        out[target] = Template(text).substitute(values)
    return out


def installed_elsewhere(name: str) -> str | None:
    """The source of an installed plugin that already offers provider ``name``, if any."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return f"{ep.value} ({ep.dist.name if ep.dist else 'unknown distribution'})"
    return None


@click.command("new-provider")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the package to (default: ./hub-NAME). It must not exist or be empty.")
@click.option("--force", is_flag=True, help="Write into an existing folder, replacing the files of the same names.")
def new_provider(name: str, directory: Path | None, force: bool) -> None:
    """Write a new provider plugin package: an OAuth 2.0 provider, its fake and its tests."""
    if not PROVIDER_NAME.fullmatch(name):
        fail(f"NAME {name!r} cannot be a provider's name: {PROVIDER_NAME_RULE}")
    values = placeholders(name)
    target = directory or Path(values["dist"])
    if target.exists() and not target.is_dir():
        fail(f"--dir {str(target)!r} is a file, not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        fail(f"{str(target)!r} already exists and is not empty; choose another --dir, or add --force to write into it")
    written = render(name)
    for relative, text in written.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    click.echo(f"Wrote the {values['title']} provider ({values['dist']}) to {target}:")
    for relative in written:
        click.echo(f"  {relative}")
    if other := installed_elsewhere(name):
        click.echo(click.style("note: ", fg="yellow") + f"{other} already offers provider {name!r}; "
                   "the hub refuses to start with two plugins of one name, so uninstall one of them")
    click.echo("\nNext steps:")
    click.echo(f"  1. cd {target}")
    click.echo("  2. pip install -e '.[test]'")
    click.echo("  3. pytest")
