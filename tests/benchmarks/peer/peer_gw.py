"""The peer gateway (ThingsBoard IoT Gateway 3.8.5): its own venv, its config, its process.

No code of the peer is in this repository: :func:`ensure_venv` installs it from PyPI at run time
into a venv outside the repo (default ``~/.cache/pumproom-peer-venv``), pinned:
``thingsboard-gateway==3.8.5`` plus ``pymodbus==3.9.2`` (the version its Modbus connector
requires, ``modbus_connector.py`` ``required_version``; without it the connector runs
``pip install`` at start-up, which fails in the benchmark's offline network namespace),
``pyserial`` and ``pyserial-asyncio`` (imported by the same connector).

The config is the shipped ``tb_gateway.json`` with the broker, an access token, the storage
(``memory`` or ``sqlite``) and one Modbus connector: one TCP slave, ``pollPeriod`` 100 ms, one
``32float`` timeseries key per point (one read request per key: the peer has no automatic
register coalescing), report strategy ``ON_RECEIVED`` (every value sent, as ours does).
``remoteConfiguration`` and ``statistics`` are off (less work for the peer, not more).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PINNED = ["thingsboard-gateway==3.8.5", "pymodbus==3.9.2", "pyserial", "pyserial-asyncio"]
DEFAULT_VENV = Path(os.environ.get("PUMPROOM_PEER_VENV", "~/.cache/pumproom-peer-venv"))
STORAGES = ("memory", "sqlite")


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Create ``venv`` with :data:`PINNED` unless it already has them; returns its python.
    Raises ``subprocess.CalledProcessError`` (with pip's output on stderr) when pip fails."""
    venv = venv.expanduser()
    python = venv / "bin" / "python"
    stamp = venv / "pumproom-pinned.txt"
    if stamp.exists() and stamp.read_text().split() == PINNED and python.exists():
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"   installing the peer into {venv}: {' '.join(PINNED)}", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINNED], check=True)
    stamp.write_text("\n".join(PINNED) + "\n")
    return python


def modbus_connector(port: int, points: int, poll_ms: int) -> dict:
    """The Modbus connector config: float32 (big byte and word order, as the synthetic
    server's registers) holding registers at addresses 0, 2, ... of unit 1 on ``port``."""
    keys = [
        {"tag": f"f{i}", "type": "32float", "functionCode": 3, "objectsCount": 2, "address": 2 * i}
        for i in range(points)
    ]
    slave = {
        "host": "127.0.0.1",
        "port": port,
        "type": "tcp",
        "method": "socket",
        "unitId": 1,
        "deviceName": "bench-plc",
        "deviceType": "default",
        "timeout": 1,
        "byteOrder": "BIG",
        "wordOrder": "BIG",
        "retries": 1,
        "retryOnEmpty": True,
        "retryOnInvalid": True,
        "pollPeriod": poll_ms,
        "connectAttemptTimeMs": 500,
        "connectAttemptCount": 5,
        "waitAfterFailedAttemptsMs": 30000,
        "attributes": [],
        "timeseries": keys,
        "attributeUpdates": [],
        "rpc": [],
    }
    return {"master": {"slaves": [slave]}}


def write_config(
    workdir: Path,
    broker_port: int,
    modbus_port: int,
    storage: str,
    points: int = 100,
    poll_ms: int = 100,
) -> Path:
    """Write ``tb_gateway.json``, ``logs.json`` (warnings only, to files in ``workdir/logs``) and
    ``modbus.json`` into ``workdir/config``; returns that folder (``TB_GW_CONFIG_DIR``).
    ``storage`` is ``memory`` or ``sqlite``; anything else raises ``ValueError``."""
    if storage not in STORAGES:
        raise ValueError(f"peer storage {storage!r}: expected one of {STORAGES}")
    conf = workdir / "config"
    conf.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    storage_cfg: dict = {"type": storage}
    if storage == "memory":  # the shipped tb_gateway.json values
        storage_cfg |= {"read_records_count": 100, "max_records_count": 100000}
    else:  # the documented sqlite keys, with their defaults (storage_settings.py)
        storage_cfg |= {
            "data_file_path": f"{workdir}/data/",
            "messages_ttl_check_in_hours": 1,
            "messages_ttl_in_days": 7,
            "max_read_records_count": 1000,
        }
    gw = {
        "thingsboard": {
            "host": "127.0.0.1",
            "port": broker_port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 8196,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 60,
            "handleDeviceRenaming": True,
            "security": {"type": "accessToken", "accessToken": "bench-token"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": storage_cfg,
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }
    (conf / "tb_gateway.json").write_text(json.dumps(gw, indent=1))
    (conf / "modbus.json").write_text(json.dumps(modbus_connector(modbus_port, points, poll_ms)))
    (conf / "logs.json").write_text(json.dumps(_logs(workdir / "logs")))
    return conf


def _logs(folder: Path) -> dict:
    """A logging config: every logger the peer names, at WARNING, to one file; ``pymodbus`` at
    ERROR: pymodbus 3.9.2 logs "BinaryPayloadDecoder is deprecated" once per value the peer
    decodes (11,000 lines in 11 s), a cost the peer's users could also silence."""
    names = [
        "service",
        "connector",
        "converter",
        "tb_connection",
        "storage",
        "extension",
        "database",
        "tb_gateway",
        "statistics",
    ]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"f": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "f",
                "filename": str(folder / "peer.log"),
            }
        },
        "loggers": {
            **{n: {"handlers": ["file"], "level": "WARNING", "propagate": False} for n in names},
            "pymodbus": {"handlers": ["file"], "level": "ERROR", "propagate": False},
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
    }


def start(python: Path, conf: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """Start the peer on ``conf`` (cwd ``workdir``, output to ``workdir/peer.out``)."""
    env = {**os.environ, "TB_GW_CONFIG_DIR": str(conf)}
    env.pop("PYTHONPATH", None)
    with open(workdir / "peer.out", "ab") as out:
        return subprocess.Popen(
            [str(python), "-c", "from thingsboard_gateway.tb_gateway import daemon; daemon()"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
