"""The README's openssl recipe for an OPC UA client certificate, as a test helper (so the
documented command is the one the tests prove)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def client_certificate(directory: Path, uri: str, name: str = "client") -> tuple[str, str]:
    """Make ``<name>.der`` (certificate) and ``<name>-key.pem`` (private key) in ``directory``
    with SubjectAltName ``URI:<uri>``, exactly as README "OPC UA client certificate" says.

    Returns:
        (certificate path, key path).
    """
    pem, key, der = (
        directory / f"{name}.pem",
        directory / f"{name}-key.pem",
        directory / f"{name}.der",
    )
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", "3650",
         "-keyout", str(key), "-out", str(pem), "-subj", "/CN=pumproom-edge",
         "-addext", f"subjectAltName=URI:{uri},DNS:localhost",
         "-addext", "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment",
         "-addext", "extendedKeyUsage=clientAuth"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-outform", "der", "-out", str(der)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(der), str(key)
