"""The status page with an access token: every route refuses a request without it (401), takes
it as ``?token=`` or ``Authorization: Bearer``, and is read-only (a POST is 405)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent import status
from agent.app import Agent
from agent.config import load_config
from tests.agent.test_status import YAML, _free_port


def _status(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # loopback only
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_a_token_guards_every_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGE_TOKEN", "s3cret")
    site = tmp_path / "site.yaml"
    text = YAML.format(port=_free_port(), buffer=tmp_path / "b.sqlite")
    site.write_text(text + "status:\n  listen: 127.0.0.1:8080\n  token_env: PAGE_TOKEN\n")
    agent = Agent(load_config(site))
    port = _free_port()
    runner = await status.serve(agent, "127.0.0.1", port)
    assert runner is not None
    base = f"http://127.0.0.1:{port}"
    try:
        for path in ("/", "/status.json", "/events"):
            assert await asyncio.to_thread(_status, base + path) == 401, path
            assert await asyncio.to_thread(_status, base + path + "?token=wrong") == 401, path
        assert await asyncio.to_thread(_status, base + "/?token=s3cret") == 200
        bearer = {"Authorization": "Bearer s3cret"}
        assert await asyncio.to_thread(_status, base + "/status.json", "GET", bearer) == 200
        assert await asyncio.to_thread(_status, base + "/status.json", "POST", bearer) == 405
    finally:
        await runner.cleanup()
