"""Fault: the simulator's OPC UA server does not trust the client's application certificate.

With a trust list (:class:`hil_sim.devices.opcua_server.OpcUaFacade` ``trusted_clients``), an
OpenSecureChannel request signed with any other certificate is refused *in the OpenSecureChannel
response itself*: a ServiceFault with ``BadSecurityChecksFailed`` (OPC UA Part 4 §7.34, Table 177;
Part 6 §6.7.4 lets a server refuse the channel for an untrusted certificate). asyncua's client
does not expect a fault there: its ``open_secure_channel`` ends in a bare ``AssertionError``
(asyncua 2.1 ``ua_client.py``), which is what issue 11 saw escape the driver. The server signs
the fault with the asymmetric policy, so the client reads it as a genuine answer.

asyncua's server has no hook at that point (its certificate validator runs at CreateSession), so
:func:`install` wraps ``UaProcessor.open_secure_channel`` once per process; servers without a
trust list are unaffected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

TRUST_ATTR = "pumproom_trusted_clients"
"""Attribute of the asyncua InternalServer holding the trusted certificates (DER bytes)."""


def load_der(path: str) -> bytes:
    """A certificate file (DER or PEM) as DER bytes.

    Raises:
        OSError: the file cannot be read. ValueError: it is not a certificate.
    """
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


def install() -> None:
    """Wrap ``UaProcessor.open_secure_channel`` (idempotent)."""
    original = UaProcessor.open_secure_channel
    if getattr(original, "_pumproom_trust", False):
        return

    def open_secure_channel(self: Any, algohdr: Any, seqhdr: Any, body: Any) -> None:
        trusted = getattr(self.iserver, TRUST_ATTR, None)
        cert = algohdr.SenderCertificate
        if trusted is None or not cert or bytes(cert) in trusted:
            return original(self, algohdr, seqhdr, body)
        request = struct_from_binary(ua.OpenSecureChannelRequest, body)
        if not self._connection.is_open():
            self._connection.select_policy(
                algohdr.SecurityPolicyURI, cert, request.Parameters.SecurityMode
            )
        fault = ua.ServiceFault()
        fault.ResponseHeader.ServiceResult = ua.StatusCode(
            ua.UInt32(ua.StatusCodes.BadSecurityChecksFailed)
        )
        self.send_response(
            request.RequestHeader.RequestHandle, seqhdr, fault, ua.MessageType.SecureOpen
        )
        return None

    open_secure_channel._pumproom_trust = True  # type: ignore[attr-defined]
    UaProcessor.open_secure_channel = open_secure_channel  # type: ignore[method-assign]
