"""The ``pumproom-agent`` click group: ``run`` loads the config the same way as ``check``."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.config import SiteConfig
from tests.config.conftest import CABINET


def test_run_refuses_a_bad_config_with_exit_2(write: Callable[[str], Path]) -> None:
    path = write(CABINET)
    result = CliRunner().invoke(main, ["run", "-c", str(path), "--set", "site.id=a b"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "--set:1:9: site.id: expected 1–64 letters, digits, '_' or '-', got 'a b'"
    ]


def test_run_hands_the_config_to_app_run_and_exits_with_its_code(
    write: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[SiteConfig] = []

    def fake_run(config: SiteConfig, load: Callable[[], SiteConfig]) -> int:
        seen.append(config)
        seen.append(load())  # a reload (SIGHUP) re-reads the file with the same overrides
        return 3

    # agent/app.py is another part of the project; the CLI's job is only to call it.
    app = types.ModuleType("agent.app")
    app.run = fake_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agent.app", app)
    monkeypatch.setattr(sys.modules["agent"], "app", app, raising=False)
    # run configures the process's logging; in-process that handler (at debug) would outlive
    # this test and rewrite other tests' records (tests/agent/test_logs.py after this one)
    monkeypatch.setattr("agent.cli.configure_logging", lambda level: None)
    path = write(CABINET)
    result = CliRunner().invoke(
        main, ["run", "-c", str(path), "--set", "devices.cabinet.port=1502", "--log-level", "debug"]
    )
    assert result.exit_code == 3, result.output
    assert [c.devices[0].port for c in seen] == [1502, 1502]  # type: ignore[union-attr]


def test_check_summary_counts_connections(write: Callable[[str], Path]) -> None:
    devices = CABINET + CABINET.replace("name: cabinet", "name: cabinet2").replace(
        "p_out", "p_in"
    ).replace("pump1.freq", "pump2.freq").replace("15020", "15021")
    result = CliRunner().invoke(main, ["check", "-c", str(write(devices))])
    assert (result.exit_code, result.output) == (0, "ok: 2 devices, 4 points, 2 connections\n")
