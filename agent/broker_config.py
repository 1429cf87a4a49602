"""What the agent needs from the configuration and the machine before anything starts: its
gateway id, and the MQTT broker settings with their credentials and TLS files.

A problem here is one the configuration must fix (:class:`ConfigurationError`; :func:`agent.app.run`
exits :data:`~agent.config.EXIT_CONFIG`), never one a restart cures.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import uuid
from pathlib import Path

from agent.config import SiteConfig
from agent.logs import redact
from agent.mqtt import BrokerSettings


class ConfigurationError(RuntimeError):
    """The configuration cannot work on this machine: a credential variable or file is missing,
    a TLS file cannot be read. Restarting will not fix it: :func:`agent.app.run` returns
    :data:`~agent.config.EXIT_CONFIG`."""


def gateway_id(config: SiteConfig) -> str:
    """The configured gateway id, or one derived from this machine's identity.

    The derivation hashes ``/etc/machine-id`` (systemd machine-id(5)) together with the hardware
    address of a network interface (``uuid.getnode()``): two gateways cloned from one SD-card
    image share the machine-id but not the Ethernet/Wi-Fi MAC, so they get different ids (and MQTT
    client ids) and do not knock each other off the broker.
    """
    if config.site.gateway_id:
        return config.site.gateway_id
    try:
        mid = Path("/etc/machine-id").read_text().strip()
    except OSError:
        mid = os.uname().nodename
    node = uuid.getnode()
    return "gw-" + hashlib.sha256(f"{mid}:{node:012x}".encode()).hexdigest()[:12]


def broker_settings(config: SiteConfig, gw: str) -> BrokerSettings:
    """MQTT settings from ``uplink:``; credentials from files or the environment, never the YAML.

    Raises:
        ConfigurationError: a configured credential file or variable is missing, or a TLS
            file (``uplink.tls.*``) cannot be read or is not a certificate/key.
    """
    up = config.uplink
    username = password = None
    cred = up.credentials
    if cred is not None:
        username = _secret(cred.username_env, cred.username_file, "username")
        password = _secret(cred.password_env, cred.password_file, "password")
    tls = None
    if up.broker_tls or up.tls is not None:
        t = up.tls
        try:
            tls = ssl.create_default_context(cafile=t.ca_file if t else None)
            if t is not None and t.cert_file:
                tls.load_cert_chain(t.cert_file, t.key_file)
        except (OSError, ssl.SSLError) as exc:
            named = (
                []
                if t is None
                else [("ca_file", t.ca_file), ("cert_file", t.cert_file), ("key_file", t.key_file)]
            )
            files = ", ".join(f"{k}={v}" for k, v in named if v)
            raise ConfigurationError(
                f"uplink.tls: cannot load {files or 'the system CA certificates'}: {exc}"
            ) from exc
    return BrokerSettings(
        host=up.broker_host,
        port=up.broker_port,
        client_id=up.client_id or f"pumproom-{config.site.id}-{gw}",
        keepalive_s=up.keepalive_s,
        mqtt5=up.protocol == "5",
        tls=tls,
        username=username,
        password=password,
    )


def _secret(env: str | None, file: str | None, what: str) -> str | None:
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigurationError(
                f"uplink.credentials: environment variable {env} ({what}) is not set"
            )
        if what == "password":
            redact(value)  # never in a log line, whatever library logs it
        return value
    if file:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")  # systemd LoadCredential=
        path = Path(directory, file) if directory and not os.path.isabs(file) else Path(file)
        try:
            secret = path.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"uplink.credentials: cannot read {what} file {path}: {exc}"
            ) from exc
        if directory and not secret.strip("\0 \t\r\n"):
            # the unit's SetCredential= default (one NUL byte): the file systemd should have
            # loaded is missing
            raise ConfigurationError(
                f"uplink.credentials: the {what} credential {path} is empty (is the file that"
                " systemd's LoadCredential= names missing?)"
            )
        if what == "password":
            redact(secret)
        return secret
    return None
