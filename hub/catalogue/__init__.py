"""The catalogue of YAML providers shipped with the hub (docs/providers-yaml.md)."""
