"""A problem that points at an earlier place names that place's file when it is not the site
file (a point that came from a device profile): "first at line 68" of the site file was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_config

SITE = """\
site:
  id: demo
devices:
  - name: vfd1
    transport: modbus-tcp
    host: 127.0.0.1
    unit_id: 1
    profile: invt-gd200a
    prefix: pump1.
  - name: other
    transport: modbus-tcp
    host: 127.0.0.1
    unit_id: 2
    points:
      - {name: pump1.freq, register: holding, address: 0, type: uint16}
uplink:
  broker: mqtt://127.0.0.1:1883
buffer:
  path: /tmp/b.sqlite
"""


def test_a_duplicate_of_a_profile_point_names_the_profile_file(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    with pytest.raises(ConfigError) as err:
        load_config(site)
    (problem,) = [str(p) for p in err.value.problems]
    assert problem.startswith(f"{site}:15:16: ")
    assert "duplicate point name 'pump1.freq'" in problem
    assert "invt-gd200a.yaml line " in problem, problem
