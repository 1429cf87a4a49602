"""Load, override and validate a pump-room configuration file: :func:`load_config`."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agent.config.checks import CheckedDevice, check_control, check_devices
from agent.config.checks_alarms import check_alarms
from agent.config.messages import path_text, problems_from
from agent.config.opcua_checks import check_opcua
from agent.config.overrides import apply_overrides
from agent.config.problems import ConfigError, Path_, Positions, Problem
from agent.config.profiles import expand_profiles
from agent.config.schema import NAME_PATTERN, Device, ModbusPointConfig, OpcUaPointConfig
from agent.config.site import SiteConfig, default_application_uri
from agent.config.yaml_loader import load_yaml

_SECRET_KEYS = {"password": "password", "username": "username"}
_DEVICE: TypeAdapter[Any] = TypeAdapter(Device)
_POINT_MODELS: dict[Any, type[ModbusPointConfig] | type[OpcUaPointConfig]] = {
    "modbus-tcp": ModbusPointConfig,
    "modbus-rtu": ModbusPointConfig,
    "opcua": OpcUaPointConfig,
}


def load_config(
    path: str | Path, overrides: Sequence[str] = (), warnings: list[Problem] | None = None
) -> SiteConfig:
    """Read the YAML at ``path``, apply ``--set`` overrides, and validate it in two stages:
    each item against its schema, then the whole (duplicate names, overlapping registers, shared
    serial ports, OPC UA certificate files…). Touches no device.

    Args:
        path: the YAML file; problems name it as given.
        overrides: ``"dotted.key=value"`` strings, applied in order (see
            :mod:`agent.config.overrides`).
        warnings: when given, receives what is allowed but probably wrong (e.g. an OPC UA
            namespace index without ``namespace_uri``), each a :class:`Problem` whose message
            starts with ``warning: ``.

    Returns:
        The validated :class:`SiteConfig`.

    Raises:
        ConfigError: with every problem found, each ``FILE:LINE:COLUMN: message``.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(file, 1, 1, f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        raise ConfigError([Problem(file, 1, 1, msg)]) from None
    with _gc_paused():  # the parsed tree dies with _parse_and_validate's frame, before resuming
        return _parse_and_validate(text, file, overrides, Path(path).resolve().parent, warnings)


def _parse_and_validate(
    text: str,
    file: str,
    overrides: Sequence[str],
    base_dir: Path,
    warnings: list[Problem] | None,
) -> SiteConfig:
    data, positions = load_yaml(text, file)
    found = expand_profiles(data, positions, file)  # before --set: it may name profile points
    data, problems = apply_overrides(data, positions, overrides)
    return validate(data, positions, [*found, *problems], base_dir=base_dir, warnings=warnings)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """CPython's cyclic garbage collector paused while a configuration is loaded.

    A load allocates a container (dict, list, tuple, :class:`Pos`, model) for every key and
    value, ~10^6 for 10,000 points, and nearly all of them live until the load returns: the
    collector, which runs a young-generation pass every 700 net container allocations (Python
    docs, ``gc.set_threshold``, default thresholds) and promotes survivors into ever larger
    older passes, spent a quarter to a half of the load's CPU finding nothing to free (issue
    17). The collector is resumed (if it was enabled) when the load ends, however it ends, and
    collects whatever cycles the load left (a caught exception's traceback) as usual. Resume it
    after the parsed tree is freed: the first pass then scans only what the load returns."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate(
    data: Any,
    positions: Positions,
    problems: Sequence[Problem] = (),
    *,
    base_dir: Path | None = None,
    warnings: list[Problem] | None = None,
) -> SiteConfig:
    """Validate an already parsed tree (see :func:`load_config`). ``base_dir``: the file's
    folder, where ``faultmaps/`` is looked up (not checked when ``None``); ``warnings``: as in
    :func:`load_config`.

    Raises:
        ConfigError: ``problems`` plus everything found here.
    """
    found = list(problems)
    if not isinstance(data, dict):
        msg = "expected a mapping with the keys site, devices, uplink and buffer"
        if data is None:
            msg = "the configuration is empty; " + msg
        raise ConfigError([*found, positions.value(()).problem(msg)])
    found += _literal_secrets(data, positions)
    config = None
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        found += problems_from(exc, SiteConfig, data, positions)
    checked = _checked_devices(data, config)
    found += check_devices(checked, data, positions)
    found += check_control(checked, data, positions)
    found += check_alarms(checked, data, positions, base_dir)
    opcua_problems, opcua_warnings = check_opcua(checked, data, positions, _default_uri(data))
    found += opcua_problems
    if warnings is not None:
        warnings.extend(sorted(opcua_warnings, key=lambda w: (w.file, w.line, w.column)))
    if found or config is None:
        raise ConfigError(found)
    config._config_dir = base_dir
    return config


def _default_uri(data: dict[str, Any]) -> str | None:
    """The site's default OPC UA ApplicationUri from the raw tree, or None if ``site`` is bad."""
    site = data.get("site")
    if not isinstance(site, dict) or not isinstance(site.get("id"), str):
        return None
    gateway = site.get("gateway_id")
    return default_application_uri(site["id"], gateway if isinstance(gateway, str) else None)


def _checked_devices(data: dict[str, Any], config: SiteConfig | None) -> list[CheckedDevice]:
    """What passed the schema, device by device, for the whole-config checks: a device that
    failed still contributes its valid points (so one typo does not hide an overlap). When the
    whole model validated (``config``), its devices are those, not validated a second time."""
    if config is not None:
        return [
            CheckedDevice(i, dev.name, dev, list(enumerate(dev.points)), _addressing(dev))
            for i, dev in enumerate(config.devices)
        ]
    devices = data.get("devices")
    out = []
    for i, item in enumerate(devices if isinstance(devices, list) else []):
        if not isinstance(item, dict):
            continue
        try:
            dev = _DEVICE.validate_python(item)
        except ValidationError:
            pass  # reported by the whole-model validation
        else:
            points = list(enumerate(dev.points))
            out.append(CheckedDevice(i, dev.name, dev, points, _addressing(dev)))
            continue
        name = item.get("name")
        valid_name = isinstance(name, str) and re.fullmatch(NAME_PATTERN, name)
        addressing = item.get("addressing", "pdu")
        if addressing not in ("pdu", "register-number"):
            addressing = "pdu"  # reported; skip address checks rather than guess
        point_model = _POINT_MODELS.get(item.get("transport"))
        raw_points = item.get("points")
        checked = CheckedDevice(i, name if valid_name else None, None, [], addressing)
        for j, raw in enumerate(raw_points if isinstance(raw_points, list) else []):
            if point_model is None:
                break
            try:
                checked.points.append((j, point_model.model_validate(raw)))
            except ValidationError:
                continue
        out.append(checked)
    return out


def _addressing(dev: Any) -> str:
    """A validated device's register addressing: ``pdu`` or ``register-number`` (Modbus), ``pdu``
    for an OPC UA device (it has none)."""
    return str(getattr(dev, "addressing", "pdu"))


def _literal_secrets(data: dict[str, Any], positions: Positions) -> list[Problem]:
    """Problems for ``password``/``username`` keys anywhere under ``uplink``; the keys are then
    removed so the schema does not report them a second time as unknown keys."""
    found: list[Problem] = []
    _walk_secrets(data.get("uplink"), ("uplink",), data, positions, found)
    return found


def _walk_secrets(
    node: Any, path: Path_, data: dict[str, Any], positions: Positions, found: list[Problem]
) -> None:
    """:func:`_literal_secrets` below ``path`` (a function, not a recursive closure: that is a
    reference cycle keeping ``positions`` alive for the cyclic GC, paused during a load)."""
    if isinstance(node, dict):
        for key in list(node):
            if key in _SECRET_KEYS:
                what = _SECRET_KEYS[key]
                msg = (
                    f"{path_text(data, (*path, key))}: credentials never live in the YAML; "
                    f"use {what}_file or {what}_env"
                )
                found.append(positions.key((*path, key)).problem(msg))
                del node[key]
            else:
                _walk_secrets(node[key], (*path, key), data, positions, found)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk_secrets(item, (*path, i), data, positions, found)
