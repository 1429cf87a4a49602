"""Pump-room configuration: one YAML file, validated in two stages, with precise errors.

Public API::

    from agent.config import load_config, ConfigError, Problem
    config = load_config("site.yaml", overrides=["devices.cabinet.port=15021"])
    config.connections()  # -> list[ConnectionPlan]: one per driver, points grouped by interval
    config.catalogue()    # -> list[PointInfo]

Every problem is one line ``FILE:LINE:COLUMN: message`` (see :class:`Problem`).
Modules: :mod:`.yaml_loader` (strict YAML with positions), :mod:`.schema` (pydantic models),
:mod:`.messages` (pydantic errors → problems), :mod:`.checks` (whole-config rules),
:mod:`.overrides` (``--set``), :mod:`.plan` (connections, point specs, catalogue),
:mod:`.loader` (:func:`load_config`).
"""

from agent.config.loader import load_config, validate
from agent.config.plan import ConnectionPlan, PointInfo, pdu_address
from agent.config.problems import EXIT_CONFIG, ConfigError, Problem
from agent.config.schema import (
    Buffer,
    Credentials,
    ModbusPointConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    OpcUaDevice,
    OpcUaPointConfig,
    Site,
    Tls,
    Uplink,
)
from agent.config.site import SiteConfig

__all__ = [
    "EXIT_CONFIG",
    "Buffer",
    "ConfigError",
    "ConnectionPlan",
    "Credentials",
    "ModbusPointConfig",
    "ModbusRtuDevice",
    "ModbusTcpDevice",
    "OpcUaDevice",
    "OpcUaPointConfig",
    "PointInfo",
    "Problem",
    "Site",
    "SiteConfig",
    "Tls",
    "Uplink",
    "load_config",
    "pdu_address",
    "validate",
]
