"""Credentials (and TLS files) the configuration names but this machine lacks are a configuration
error: ``pumproom-agent run`` ends with one ERROR line naming the key and what is missing, exit 2
(``RestartPreventExitStatus=2`` in systemd/pumproom-agent.service: no restart every 5 s), and
opens no buffer. Real CLI subprocesses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agent.test_open_store import _agent, _one_error_line


@pytest.mark.parametrize(
    ("sets", "needles"),
    [
        (
            ["uplink.credentials.username_env=PUMPROOM_TEST_UNSET_USER",
             "uplink.credentials.password_env=PUMPROOM_TEST_UNSET_PW"],
            ["uplink.credentials", "PUMPROOM_TEST_UNSET_USER", "not set"],
        ),
        (
            ["uplink.credentials.username_env=PUMPROOM_TEST_USER",
             "uplink.credentials.password_file={tmp}/no-such-mqtt-password"],
            ["uplink.credentials", "no-such-mqtt-password", "No such file"],
        ),
        (
            ["uplink.tls.ca_file={tmp}/no-such-ca.pem"],
            ["uplink.tls", "no-such-ca.pem"],
        ),
    ],
    ids=["env-unset", "password-file-missing", "tls-ca-missing"],
)  # fmt: skip
def test_missing_credential_is_a_configuration_error(
    tmp_path: Path, sets: list[str], needles: list[str]
) -> None:
    env = {"PUMPROOM_TEST_USER": "pump"}
    assert "PUMPROOM_TEST_UNSET_USER" not in os.environ
    buffer = tmp_path / "buffer.sqlite"
    code, out = _agent(buffer, *(s.format(tmp=tmp_path) for s in sets), env=env)
    assert code == 2, f"a configuration error: systemd must not restart it\n{out}"
    _one_error_line(out, *needles)
    assert not buffer.exists(), "nothing is opened before the credentials are known"


def test_the_units_default_credential_is_read_as_missing(tmp_path: Path) -> None:
    """systemd/pumproom-agent.service gives ``mqtt-password`` a one-NUL-byte default
    (``SetCredential=``) so that an anonymous-broker site starts without the file; a config
    that asks for the password then gets a configuration error naming the credential."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "mqtt-password").write_bytes(b"\0")
    env = {"PUMPROOM_TEST_USER": "pump", "CREDENTIALS_DIRECTORY": str(creds)}
    buffer = tmp_path / "buffer.sqlite"
    code, out = _agent(
        buffer,
        "uplink.credentials.username_env=PUMPROOM_TEST_USER",
        "uplink.credentials.password_file=mqtt-password",
        env=env,
    )
    assert code == 2, out
    _one_error_line(out, "uplink.credentials", "mqtt-password", "is empty")
