"""The contract suite against a YAML provider and its generated fake: ``contract_for(path)``
makes the test class a test module binds to a ``Test...`` name (docs/providers-yaml.md)."""

from __future__ import annotations

from pathlib import Path

from hub.yamlprov import YamlProvider, load_file

from .contract import ProviderContract
from .fake import FakeProvider
from .yamlfake import GeneratedFake


class YamlProviderContract(ProviderContract):
    """:class:`ProviderContract` with the fake generated from the provider's own file."""

    plugin: YamlProvider

    def make_fake(self) -> GeneratedFake:
        return GeneratedFake(self.plugin.definition)

    def revoked_at_provider(self, fake: FakeProvider) -> bool:
        # A provider that offers no revocation has nothing to end: the hub forgets the credential.
        if self.plugin.definition.auth.revoke is None:
            return True
        return super().revoked_at_provider(fake)


def contract_for(path: str | Path) -> type[YamlProviderContract]:
    """A contract class for the provider file at ``path``: ``TestGithub = contract_for(...)``."""
    plugin = load_file(path)
    return type(f"Test{plugin.definition.title.replace(' ', '')}Contract", (YamlProviderContract,), {"plugin": plugin})
