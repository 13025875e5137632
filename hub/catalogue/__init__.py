"""The catalogue of YAML providers shipped with the hub (docs/yaml-providers.md)."""
