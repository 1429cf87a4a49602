"""The whole validated configuration of one pump room."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, PrivateAttr

from agent.config import plan
from agent.config.alarms import AlarmsConfig
from agent.config.control import ControlConfig
from agent.config.schema import Buffer, Device, Site, StatusPage, Strict, Uplink

DEFAULT_APPLICATION_URI = "urn:pumproom-edge:{site}"
"""The OPC UA client's ApplicationUri when a device sets no ``application_uri``:
``urn:pumproom-edge:<site.id>``, or ``urn:pumproom-edge:<site.id>:<site.gateway_id>`` when the
gateway id is configured (unique per gateway, as OPC UA Part 4 §7.2 asks of ApplicationUri). The
client certificate's SubjectAltName URI must be exactly this (README, "OPC UA client
certificate")."""


class SiteConfig(Strict):
    """A validated pump-room configuration (build it with :func:`agent.config.load_config`,
    which also runs the whole-config checks that this model alone does not).

    Attributes:
        site: identity (:class:`~agent.config.schema.Site`).
        devices: Modbus TCP, Modbus RTU and OPC UA devices, in file order; at least one (a
            site with nothing to poll is a mistake, not a configuration).
        uplink: MQTT session settings.
        buffer: SQLite store-and-forward settings.
        control: the local constant-pressure loop, or ``None`` (no loop).
        status: the local status page, or ``None`` (no page).
        alarms: alarm rules evaluated on the gateway, or ``None`` (no alarms).
    """

    site: Site
    devices: Annotated[list[Device], Field(min_length=1)]
    uplink: Uplink
    buffer: Buffer
    control: ControlConfig | None = None
    status: StatusPage | None = None
    alarms: AlarmsConfig | None = None
    _config_dir: Path | None = PrivateAttr(default=None)

    @property
    def config_dir(self) -> Path | None:
        """The folder of the file it was loaded from (``faultmaps/`` is there), or ``None``."""
        return self._config_dir

    def connections(self) -> list[plan.ConnectionPlan]:
        """One :class:`~agent.config.plan.ConnectionPlan` per driver (see
        :func:`agent.config.plan.connections`): RTU devices on one serial port share one."""
        return plan.connections(self.devices, application_uri=self.application_uri)

    @property
    def application_uri(self) -> str:
        """The default OPC UA ApplicationUri of this gateway (:data:`DEFAULT_APPLICATION_URI`)."""
        return default_application_uri(self.site.id, self.site.gateway_id)

    def catalogue(self) -> list[plan.PointInfo]:
        """One :class:`~agent.config.plan.PointInfo` per point, in file order."""
        return plan.catalogue(self.devices)

    @property
    def point_count(self) -> int:
        """Number of points over all devices."""
        return sum(len(d.points) for d in self.devices)


def default_application_uri(site_id: str, gateway_id: str | None) -> str:
    """:data:`DEFAULT_APPLICATION_URI` for a site id and optional gateway id."""
    site = f"{site_id}:{gateway_id}" if gateway_id else site_id
    return DEFAULT_APPLICATION_URI.format(site=site)
