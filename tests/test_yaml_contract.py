"""The provider contract of hub.testing against every catalogue entry's generated fake."""

from pathlib import Path

from hub.testing.yamlcontract import contract_for
from hub.yamlprov import CATALOGUE, catalogue_names

for _name in catalogue_names():
    globals()[f"TestCatalogue_{_name}"] = contract_for(CATALOGUE / f"{_name}.yaml")

# The worked example of docs/providers-yaml.md passes the same suite.
TestWorkedExample = contract_for(Path(__file__).resolve().parent.parent / "docs" / "examples" / "acme_tasks.yaml")
