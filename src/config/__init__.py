"""Config schemas, the resolvers our YAML files use, and what the hardware offers (precision, devices, workers)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def setup() -> None:
    """Register the resolvers and schemas once per process, before Hydra composes a config."""
    from src.config.resolvers import register_resolvers
    from src.config.schemas import register_schemas

    register_resolvers()
    register_schemas()
