"""OPC UA server for the water-quality analyser and the room I/O (asyncua).

Namespace URI :data:`NAMESPACE_URI` (registered first, so its index is 2), string node ids such as
``ns=2;s=Analyser.Turbidity``. The analyser node set imitates a multi-parameter panel with
turbidity (NTU, Hach TSS sc-like [S86]), free chlorine (mg/L) and a reading status coded like
the Xylem CL500 30010 register (1 normal, 2 over range, 3 under range, 4 need standard, 5 need
sample, 6 reading error, [S35]), and pH (Yokogawa FLXA402-like [S87]); domain.md §4.10. Room I/O
(door contact, flood electrode, cabinet temperature) follows the pump-room security/environment
subsystems of domain.md §3.4 ([S34]).

Values are quantised before serving (turbidity and chlorine 0.001, pH 0.01, temperature 0.1) and
written only when they change.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from asyncua import Node, Server, ua
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import User, UserManager, UserRole

from hil_sim.devices import opcua_trust
from hil_sim.devices.testbench import UA_INITIAL, UA_TYPES
from hil_sim.plant import Plant

NAMESPACE_URI = "urn:pumproom-edge:hil-sim"
STATUS_NORMAL = 1
"""Analyser reading status 1 = normal (CL500 30010 coding, [S35])."""


@dataclass(frozen=True, slots=True)
class UaPoint:
    """One served OPC UA variable: point name, node id string (index 2), type, unit, decimals."""

    name: str
    node: str
    vtype: ua.VariantType
    unit: str
    decimals: int | None
    description: str


UA_POINTS: tuple[UaPoint, ...] = (
    UaPoint("wq.turbidity", "Analyser.Turbidity", ua.VariantType.Double, "NTU", 3, "turbidity"),
    UaPoint("wq.chlorine", "Analyser.Chlorine", ua.VariantType.Double, "mg/L", 3,
            "free residual chlorine"),
    UaPoint("wq.ph", "Analyser.pH", ua.VariantType.Double, "pH", 2, "pH"),
    UaPoint("wq.status", "Analyser.Status", ua.VariantType.UInt16, "", None,
            "reading status: 1 normal, 2 over, 3 under, 4 need standard, 5 need sample, 6 error"),
    UaPoint("room.door", "Room.Door", ua.VariantType.Boolean, "", None, "door contact (open)"),
    UaPoint("room.flood", "Room.Flood", ua.VariantType.Boolean, "", None, "flood electrode (wet)"),
    UaPoint("room.smoke", "Room.Smoke", ua.VariantType.Boolean, "", None, "smoke detector (alarm)"),
    UaPoint("room.cabinet_temp", "Room.CabinetTemperature", ua.VariantType.Double, "°C", 1,
            "cabinet air temperature"),
)  # fmt: skip


def ua_values(plant: Plant, analyser_status: int = STATUS_NORMAL) -> dict[str, float | int | bool]:
    """The quantised values to serve, by point name."""
    q = plant.quality
    raw: dict[str, float | int | bool] = {
        "wq.turbidity": q.turbidity_ntu,
        "wq.chlorine": q.chlorine_mg_l,
        "wq.ph": q.ph,
        "wq.status": analyser_status,
        "room.door": plant.room.door_open,
        "room.flood": plant.room.flood,
        "room.smoke": plant.room.smoke,
        "room.cabinet_temp": plant.room.cabinet_c,
    }
    for p in UA_POINTS:
        if p.decimals is not None:
            raw[p.name] = round(float(raw[p.name]), p.decimals)
    return raw


class OpcUaFacade:
    """The OPC UA server of the simulator.

    Args:
        plant: the plant whose analyser and room I/O are served.
        host: listen address (loopback in tests).
        port: TCP port (default 14840 in the CLI).
        certificate, private_key: server certificate and key (paths); when given the server
            offers only Basic256Sha256 Sign and SignAndEncrypt (no unsecured endpoint).
        users: user name → password; when given, anonymous sessions are refused and a user name
            token or an X.509 user certificate is required.
        test_types: also serve the raw-value test bench's variables ``Types.<name>``
            (:mod:`hil_sim.devices.testbench`; tests only), set through :attr:`test_values`.
        trusted_clients: client application certificate files (DER or PEM); when given, a
            secure channel from any other certificate is refused (fault:
            :mod:`hil_sim.devices.opcua_trust`).

    With a certificate, the server checks each client's application instance certificate as
    real servers do (OPC UA Part 4 §5.6.2 CreateSession): validity period, and the certificate's
    SubjectAltName URI must equal the client's ApplicationUri (else BadCertificateUriInvalid).

    Attributes:
        clock_offset_s: fault: the server's clock runs this far ahead (negative: behind) of the
            real time; every value it writes carries that SourceTimestamp.
    """

    def __init__(
        self,
        plant: Plant,
        host: str,
        port: int,
        *,
        certificate: str | None = None,
        private_key: str | None = None,
        users: dict[str, str] | None = None,
        test_types: bool = False,
        trusted_clients: list[str] | None = None,
    ) -> None:
        self.plant = plant
        self.trusted_clients = trusted_clients
        self.test_types = test_types
        self.test_values: dict[str, bool | int | float] = dict(UA_INITIAL)
        """Bench variable → value to serve (written by :meth:`update` when it changes)."""
        self._test_nodes: dict[str, ua.NodeId] = {}
        self._test_served: dict[str, bool | int | float] = {}
        self.certificate = certificate
        self.private_key = private_key
        self.users = users
        self.endpoint = f"opc.tcp://{host}:{port}/pumproom/hil-sim/"
        self.analyser_status = STATUS_NORMAL
        self.served: dict[str, float | int | bool] = {}
        self._server: Server | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._idx = 2
        self._loader: asyncio.Task | None = None
        self.clock_offset_s = 0.0

    async def start(self, load_delay_s: float = 0.0) -> None:
        """Start listening, then build the address space.

        Args:
            load_delay_s: fault: the server listens and accepts sessions at once but adds its
                variables only this many seconds later (a PLC still loading its project), so
                reads meanwhile answer BadNodeIdUnknown.

        Raises:
            OSError: the port is taken.
        """
        logging.getLogger("asyncua").setLevel(logging.WARNING)
        server = Server(user_manager=_Users(self.users) if self.users is not None else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("pumproom-edge HIL simulator")
        if self.certificate and self.private_key:
            await server.load_certificate(self.certificate)
            await server.load_private_key(self.private_key)
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
            options = (
                CertificateValidatorOptions.TIME_RANGE
                | CertificateValidatorOptions.URI
                | CertificateValidatorOptions.PEER_CLIENT
            )
            server.set_certificate_validator(CertificateValidator(options).validate)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self.users is not None:
            server.set_security_IDs(["Username", "Basic256Sha256"])
        if self.trusted_clients is not None:
            opcua_trust.install()
            trusted = {opcua_trust.load_der(p) for p in self.trusted_clients}
            setattr(server.iserver, opcua_trust.TRUST_ATTR, trusted)
        self._idx = await server.register_namespace(NAMESPACE_URI)
        self._server = server
        await server.start()
        if load_delay_s > 0:
            self._loader = asyncio.get_running_loop().create_task(
                self._populate(server, load_delay_s), name="opcua-slow-load"
            )
        else:
            await self._populate(server, 0.0)

    async def _populate(self, server: Server, delay_s: float) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        idx = self._idx
        objects = server.nodes.objects
        folders = {}
        values = ua_values(self.plant, self.analyser_status)
        for p in UA_POINTS:
            folder_name = p.node.split(".")[0]
            if folder_name not in folders:
                folders[folder_name] = await objects.add_object(
                    ua.NodeId(ua.String(folder_name), ua.Int16(idx)),
                    ua.QualifiedName(folder_name, idx),
                )
            node_id = ua.NodeId(ua.String(p.node), ua.Int16(idx))
            await folders[folder_name].add_variable(
                node_id,
                ua.QualifiedName(p.node.split(".", 1)[1], idx),
                ua.Variant(values[p.name], p.vtype),
            )
            self._nodes[p.name] = node_id
            await self._write(p.name, values[p.name], p.vtype)  # stamped by the server's clock
        self.served = values
        if self.test_types:
            await self._populate_bench(objects, idx)

    async def _populate_bench(self, objects: Node, idx: int) -> None:
        """The test bench's variables under their own folder ``Types`` (not the pump room's)."""
        folder = await objects.add_object(
            ua.NodeId(ua.String("Types"), ua.Int16(idx)), ua.QualifiedName("Types", idx)
        )
        served = dict(self.test_values)
        for name, vtype in UA_TYPES.items():
            node_id = ua.NodeId(ua.String(f"Types.{name}"), ua.Int16(idx))
            await folder.add_variable(
                node_id, ua.QualifiedName(name, idx), ua.Variant(served[name], vtype)
            )
            self._test_nodes[name] = node_id
        self._test_served = served

    async def restart(self, down_s: float = 0.0, load_delay_s: float = 0.0) -> None:
        """Fault: stop the server (every session and subscription is gone), stay down
        ``down_s`` seconds, start again on the same endpoint (see :meth:`start`)."""
        await self.stop()
        if down_s:
            await asyncio.sleep(down_s)
        await self.start(load_delay_s)

    async def remove_node(self, name: str) -> None:
        """Fault: delete the variable of point ``name`` from the address space (a PLC project
        change); reads of it then answer BadNodeIdUnknown."""
        node_id = self._nodes.pop(name, None)
        if self._server is not None and node_id is not None:
            await self._server.delete_nodes([self._server.get_node(node_id)])
            self.served.pop(name, None)

    async def update(self) -> None:
        """Write the values that changed since the last update."""
        if self._server is None or len(self._nodes) < len(UA_POINTS):
            return
        values = ua_values(self.plant, self.analyser_status)
        vtypes = {p.name: p.vtype for p in UA_POINTS}
        for name, value in values.items():
            if self.served.get(name) != value:
                await self._write(name, value, vtypes[name])
        self.served = values
        if self._test_nodes:
            await self._update_bench()

    async def _update_bench(self) -> None:
        """Write the bench values set since the last update, ``Gen`` last (so a client that
        sees the new ``Gen`` sees the values set with it). Compared by repr: NaN != NaN and
        -0.0 == 0.0 must still count as a change or not."""
        assert self._server is not None
        wanted = dict(self.test_values)
        names = sorted(wanted, key=lambda n: n == "Gen")
        for name in names:
            if repr(self._test_served.get(name)) != repr(wanted[name]):
                await self._server.write_attribute_value(
                    self._test_nodes[name],
                    ua.DataValue(ua.Variant(wanted[name], UA_TYPES[name])),
                )
        self._test_served = wanted

    async def write_value(self, name: str, value: float | int | bool) -> None:
        """Serve ``value`` for point ``name`` now (scripted change; the plant's next change
        overwrites it), stamped with the server's clock (see :attr:`clock_offset_s`).

        Raises:
            KeyError: unknown point or the address space is not loaded.
        """
        vtype = next(p.vtype for p in UA_POINTS if p.name == name)
        await self._write(name, value, vtype)
        self.served[name] = value

    async def _write(self, name: str, value: float | int | bool, vtype: ua.VariantType) -> None:
        """Write with a SourceTimestamp, as a PLC or analyser stamps each value it samples."""
        assert self._server is not None
        now = cast(ua.DateTime, datetime.now(UTC) + timedelta(seconds=self.clock_offset_s))
        dv = ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=now, ServerTimestamp=now)
        await self._server.write_attribute_value(self._nodes[name], dv)

    async def stop(self) -> None:
        """Stop the server (idempotent)."""
        loader, self._loader = self._loader, None
        if loader is not None:
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
        server, self._server = self._server, None
        self._nodes = {}
        self._test_nodes = {}
        if server is not None:
            await server.stop()
            await _end_orphaned_sessions(server)


async def _end_orphaned_sessions(server: Server) -> None:
    """asyncua's ``Server.stop`` leaves the session-timeout and subscription tasks of sessions
    that were still open (a restart with clients connected); cancel the ones of ``server``."""
    iserver = server.iserver
    mine = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        owner = frame.f_locals.get("self") if frame is not None else None
        if getattr(owner, "iserver", None) is iserver or (
            type(owner).__name__ == "InternalSubscription"
            and getattr(getattr(owner, "monitored_item_srv", None), "aspace", None)
            is iserver.aspace
        ):
            task.cancel()
            mine.append(task)
    if mine:  # bounded: a library task that swallows its cancel must not hang the restart
        await asyncio.wait(mine, timeout=5.0)


class _Users(UserManager):
    """Accepts the configured user names with their passwords, or any X.509 user certificate
    (the secure channel has already checked it); refuses anonymous sessions."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is not None:
            if self._users.get(username) == password:
                return User(role=UserRole.User, name=username)
            return None
        if certificate is not None:
            return User(role=UserRole.User, name="certificate")
        return None
