"""Whole-config checks of OPC UA devices: files that must exist, the client certificate against
the client's ApplicationUri, and node ids whose namespace index may change.

* Every certificate and key path (``certificate``, ``private_key``, ``server_certificate``,
  ``user_certificate``, ``user_private_key``) must name a readable file. A relative path is
  relative to the working directory of the agent (``WorkingDirectory=`` in the systemd unit);
  absolute paths are safer.
* With a security policy, the client certificate's SubjectAltName URI must include the client's
  ApplicationUri (the device's ``application_uri``, or the site default
  :data:`agent.config.site.DEFAULT_APPLICATION_URI`): servers refuse the session otherwise
  (OPC UA Part 4 §5.6.2 CreateSession, BadCertificateUriInvalid; Part 6 §6.2.2 puts the
  ApplicationUri in the certificate's subjectAltName).
* WARNING (not an error): a node id with a namespace index above 0 and no ``namespace_uri``.
  Index 0 is always the OPC UA namespace; the others are positions in the server's
  NamespaceArray, which may change when the server restarts or its project changes (Part 3
  §8.2.2, Part 6 §5.2.2.9), so the point would silently read another variable or fail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.config.checks import CheckedDevice
from agent.config.messages import path_text
from agent.config.problems import Path_, Positions, Problem
from agent.config.schema import OpcUaDevice, OpcUaPointConfig

FILE_KEYS = (
    "certificate",
    "private_key",
    "server_certificate",
    "user_certificate",
    "user_private_key",
)
"""Keys of an OPC UA device that name a file."""

_NAMESPACE_INDEX = re.compile(r"^ns=([0-9]+);")


def check_opcua(
    devices: Sequence[CheckedDevice],
    data: Any,
    positions: Positions,
    default_uri: str | None,
) -> tuple[list[Problem], list[Problem]]:
    """``(problems, warnings)`` of the OPC UA devices among ``devices`` (see the module
    docstring). ``default_uri``: the site's default ApplicationUri (``None`` when the site
    section itself is invalid: the certificate's URI is then not checked).

    Warnings are :class:`Problem` objects whose message starts with ``warning: ``.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []

    def at(path: Path_, message: str, prefix: str = "") -> Problem:
        return positions.value(path).problem(f"{prefix}{path_text(data, path)}: {message}")

    for d in devices:
        base: Path_ = ("devices", d.index)
        for j, p in d.points:
            if isinstance(p, OpcUaPointConfig) and p.namespace_uri is None:
                m = _NAMESPACE_INDEX.match(p.node_id)
                if m and int(m.group(1)) > 0:
                    msg = (
                        f"node id '{p.node_id}' uses namespace index {m.group(1)} "
                        "without namespace_uri; indexes can change when the server restarts, "
                        "add namespace_uri (the namespace's URI) so the index is looked up at "
                        "each connect"
                    )
                    warnings.append(at((*base, "points", j, "node_id"), msg, "warning: "))
        dev = d.model
        if not isinstance(dev, OpcUaDevice):
            continue
        missing = set()
        for key in FILE_KEYS:
            value = getattr(dev, key)
            if value is not None and not Path(value).is_file():
                missing.add(key)
                problems.append(
                    at(
                        (*base, key),
                        f"no such file '{value}' (relative paths are relative to the agent's "
                        "working directory; use an absolute path)",
                    )
                )
        if dev.security_policy == "None" or dev.certificate is None or "certificate" in missing:
            continue
        uri = dev.application_uri or default_uri
        if uri is None:
            continue
        problem = _certificate_uri(dev.certificate, uri)
        if problem is not None:
            key = "application_uri" if dev.application_uri else "certificate"
            problems.append(at((*base, key), problem))
    return problems, warnings


def _certificate_uri(path: str, uri: str) -> str | None:
    """What is wrong with the client certificate at ``path`` for ApplicationUri ``uri``."""
    from cryptography import x509  # lazy: ~50 ms of `pumproom-agent check` start-up otherwise

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read '{path}': {exc.strerror or exc}"
    try:
        cert = (
            x509.load_pem_x509_certificate(raw)
            if b"-----BEGIN" in raw
            else x509.load_der_x509_certificate(raw)
        )
    except ValueError:
        return f"'{path}' is not an X.509 certificate (PEM or DER)"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if uri in uris:
        return None
    found = ", ".join(f"'{u}'" for u in uris) or "none"
    return (
        f"the client certificate's SubjectAltName URI ({found}) is not the client's "
        f"application URI '{uri}': servers refuse the session (BadCertificateUriInvalid); "
        "make the certificate for this URI (README, OPC UA client certificate) or set "
        "application_uri"
    )
