"""Helpers for config tests: write a YAML string to a file and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import SiteConfig, load_config

BASE = """\
site:
  id: demo
devices:
{devices}
uplink:
  broker: mqtt://127.0.0.1:1883
buffer:
  path: /tmp/buffer.sqlite
"""

CABINET = """\
  - name: cabinet
    transport: modbus-tcp
    host: 127.0.0.1
    port: 15020
    unit_id: 1
    points:
      - {name: p_out, register: holding, address: 0, type: float32, unit: MPa}
      - {name: pump1.freq, register: holding, address: 2, type: uint16, scale: 0.01}
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """``write(devices_yaml)`` → path of a full config with those devices (dedented)."""

    def _write(devices: str) -> Path:
        path = tmp_path / "site.yaml"
        body = textwrap.dedent(devices).strip("\n")
        body = textwrap.indent(body, "  ") if not body.startswith("  ") else body
        path.write_text(BASE.format(devices=body), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def load(write: Callable[[str], Path]) -> Callable[..., SiteConfig]:
    """``load(devices_yaml, *overrides)`` → validated config."""

    def _load(devices: str, *overrides: str) -> SiteConfig:
        return load_config(write(devices), overrides)

    return _load
