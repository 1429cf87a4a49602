"""pytest plugin (entry point ``pytest11``): the simulated pump room as a fixture.

After ``pip install pumproom-edge`` a tester's own suite gets, with no conftest:

* ``hil_sim`` — a running ``hil-sim run`` (a subprocess, so it works in sync and async tests
  alike) on free loopback ports with a truth file; a :class:`HilSim` with the endpoints
  (``modbus_tcp`` host/port, ``rtu_link`` pty path, ``opcua_endpoint``, ``control`` host/port),
  ``command()`` for the control port, ``truth()`` (the ground truth so far,
  :class:`hil_sim.truth.Truth`), ``capture()`` (record a broker's uplink of a site) and
  ``report()`` (:func:`hil_sim.report.make_report`). Stopped (SIGTERM, then SIGKILL) at teardown.

Configure it per test with the marker (``scenario``: a file or a shipped name such as
``"normal-day"``, whose own speed, seed and start time hold unless given here)::

    @pytest.mark.hil_sim(scenario="my-scenario.yaml", speed=2.0, start_time="18:30", seed=7,
                         args=["--rtu-parity", "N"])
    def test_my_gateway(hil_sim):
        host, port = hil_sim.modbus_tcp
        ...

or for a whole module/suite by overriding the ``hil_sim_options`` fixture (a dict of the same
keys). Everything listens on 127.0.0.1; the OPC UA port is picked free just before the start (the
others are chosen by the kernel and read from the simulator's ready lines).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT_S = 60.0
"""How long the simulator may take to announce every server (a loaded CI machine)."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``hil_sim`` marker."""
    config.addinivalue_line(
        "markers",
        "hil_sim(scenario, speed, start_time, seed, args): options of the hil_sim fixture's "
        "simulator (see hil_sim.pytest_plugin)",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HilSim:
    """A running simulator (see the module docstring). Attributes are set once it is ready."""

    def __init__(self, workdir: Path, options: dict[str, Any]) -> None:
        self.workdir = workdir
        self.options = options
        self.truth_path = workdir / "truth.jsonl"
        self.log_path = workdir / "hil-sim.log"
        self.rtu_link = str(workdir / "ttyRTU0")
        self.opcua_endpoint = ""
        self.modbus_tcp: tuple[str, int] = ("127.0.0.1", 0)
        self.control: tuple[str, int] = ("127.0.0.1", 0)
        self.proc: subprocess.Popen[bytes] | None = None
        self._captures: list[Any] = []

    def start(self) -> HilSim:
        """Start ``hil-sim run``; wait for its ready lines.

        Raises:
            RuntimeError: it exited or was not ready within :data:`READY_TIMEOUT_S`; the message
                carries the end of its log.
        """
        o = self.options
        args = [
            sys.executable,
            "-m",
            "hil_sim.cli",
            "run",
            "--host",
            "127.0.0.1",
            "--modbus-tcp-port",
            "0",
            "--control-port",
            "0",
            "--opcua-port",
            str(_free_port()),
            "--rtu-link",
            self.rtu_link,
            "--truth",
            str(self.truth_path),
            "--log-level",
            "WARNING",
        ]
        if o.get("scenario"):
            args += ["--scenario", str(o["scenario"])]
        # a scenario's own speed, seed and start time hold unless the marker gives them; without
        # a scenario: speed 1, seed 0, 10:00 (an average hour, not the machine's clock)
        defaults = {} if o.get("scenario") else {"speed": 1.0, "seed": 0, "start_time": "10:00"}
        for key in ("speed", "seed", "start_time"):
            if key in o or key in defaults:
                args += [f"--{key.replace('_', '-')}", str(o.get(key, defaults.get(key)))]
        args += [str(a) for a in o.get("args", ())]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            text = self.log_path.read_text(errors="replace")
            if "control ready" in text:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"hil-sim did not start (exit {self.proc and self.proc.returncode}); "
                    f"its log {self.log_path} ends:\n{text[-2000:]}"
                )
            time.sleep(0.1)
        tcp = re.search(r"modbus-tcp ready on ([\d.]+):(\d+)", text)
        ctl = re.search(r"control ready on ([\d.]+):(\d+)", text)
        ua = re.search(r"opcua ready on (\S+)", text)
        assert tcp and ctl and ua, f"unexpected ready lines in {self.log_path}"
        self.modbus_tcp = (tcp.group(1), int(tcp.group(2)))
        self.control = (ctl.group(1), int(ctl.group(2)))
        self.opcua_endpoint = ua.group(1)
        return self

    def command(self, cmd: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        """Send one control-port command (:mod:`hil_sim.commands`); return its answer.
        Raises RuntimeError when the simulator answers ``ok: false``; OSError/TimeoutError."""
        with socket.create_connection(self.control, timeout=timeout_s) as s:
            s.sendall(json.dumps(cmd).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        answer: dict[str, Any] = json.loads(data)
        if not answer.get("ok"):
            raise RuntimeError(f"hil-sim refused {cmd}: {answer.get('error')}")
        return answer

    def truth(self) -> Any:
        """The ground truth recorded so far (:class:`hil_sim.truth.Truth`; a state a second)."""
        from hil_sim.truth import load_truth

        return load_truth(self.truth_path)

    def capture(self, broker: tuple[str, int], site: str, path: str | Path | None = None) -> Any:
        """A started :class:`hil_sim.report.uplink.UplinkCapture` of ``site`` on ``broker``
        (into ``path``, default ``uplink.jsonl`` beside the truth); stop it before the report.
        The fixture stops it at teardown too."""
        from hil_sim.report.uplink import UplinkCapture

        cap = UplinkCapture(broker[0], broker[1], site, path or self.workdir / "uplink.jsonl")
        self._captures.append(cap.start())
        return cap

    def report(
        self,
        uplink: str | Path | None = None,
        scenario: str | Path | None = None,
        out: str | Path | None = None,
        **kwargs: Any,
    ) -> Any:
        """:func:`hil_sim.report.make_report` of this run's truth (the simulator keeps running:
        the truth so far). ``uplink`` defaults to the capture file, ``scenario`` to the marker's,
        ``out`` to ``report/`` beside the truth; returns the :class:`hil_sim.report.Report`."""
        from hil_sim.report import make_report

        return make_report(
            self.truth_path,
            uplink or self.workdir / "uplink.jsonl",
            out or self.workdir / "report",
            scenario if scenario is not None else self.options.get("scenario"),
            **kwargs,
        )

    def stop(self) -> None:
        """Stop captures and the simulator (SIGTERM, SIGKILL after 15 s); idempotent."""
        for cap in self._captures:
            cap.stop()
        self._captures.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def hil_sim_options() -> dict[str, Any]:
    """Default options of the ``hil_sim`` fixture; override in a conftest for a whole suite."""
    return {}


@pytest.fixture
def hil_sim(
    request: pytest.FixtureRequest, tmp_path: Path, hil_sim_options: dict[str, Any]
) -> Iterator[HilSim]:
    """A running simulator on free loopback ports (see the module docstring)."""
    options = dict(hil_sim_options)
    marker = request.node.get_closest_marker("hil_sim")
    if marker is not None:
        options.update(marker.kwargs)
    sim = HilSim(tmp_path / "hil-sim", options)
    sim.workdir.mkdir(parents=True, exist_ok=True)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
