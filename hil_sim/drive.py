"""Variable-frequency drive model: ramped frequency reference, first-order speed, comms watchdog.

Pure state machine, stepped by the plant. Frequencies Hz, times s.

* The output frequency follows the reference along linear acceleration/deceleration ramps
  (drive ramp times: INVT P00.11/P00.12, Danfoss 3-41/3-42, domain.md §1.5); the motor/pump speed
  follows the output frequency as a first-order lag (rotor and water inertia, derived).
* Fieldbus watchdog (Danfoss 8-03 control timeout, default 60 s, and 8-04 timeout function
  Off / Freeze / Stop / Max speed / Stop and trip, [S29]; Inovance Fd-04 0.0 = disabled [S30]):
  when the drive is under fieldbus control and no control write arrived for ``timeout_s``, the
  action is applied until the next control write (a trip needs a reset command).
* Status and commands use the INVT Goodrive coding (domain.md §4.4, [S70][S71]).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class InvtCommand(enum.IntEnum):
    """INVT Goodrive 2000H command values ([S70][S71])."""

    FWD_RUN = 1
    REV_RUN = 2
    FWD_JOG = 3
    REV_JOG = 4
    STOP = 5
    COAST_STOP = 6
    FAULT_RESET = 7
    JOG_STOP = 8


class InvtStatus(enum.IntEnum):
    """INVT Goodrive 2100H status word 1 values ([S71][S72])."""

    FWD_RUNNING = 1
    REV_RUNNING = 2
    STOPPED = 3
    FAULT = 4
    POFF = 5


class WatchdogAction(enum.StrEnum):
    """Timeout functions after Danfoss 8-04 ([S29])."""

    OFF = "off"
    FREEZE = "freeze"
    STOP = "stop"
    MAX = "max"
    STOP_TRIP = "stop_trip"
    LOCAL = "local"
    """Hand control back to the cabinet's own controller (the plant leaves bus mode). Simulator
    model of a drive/PLC set to fall back to local (terminal/PID) control on a fieldbus timeout;
    not one of the Danfoss 8-04 values listed in domain.md."""


FAULT_COMMS = 18
"""Fault code latched by a ``stop_trip`` watchdog action (INVT "CE" communication fault; the
numeric code is an assumption, not taken from a manual)."""


@dataclass
class Drive:
    """One VFD driving one pump.

    Attributes:
        f_max_hz: maximum frequency (P00.03-like), Hz.
        ramp_hz_per_s: acceleration and deceleration rate, Hz/s (0→50 Hz in 5 s, assumed).
        speed_tau_s: first-order lag of speed behind output frequency, s (assumed 0.3 s).
        bus_run: last run/stop command received over the fieldbus.
        bus_freq_hz: last frequency reference received over the fieldbus (2001H), Hz.
        f_out_hz: ramped output frequency, Hz.
        speed_hz: motor speed expressed as electrical frequency, Hz.
        run: whether the drive is commanded to run this step.
        fault_code: latched fault (0 = none).
        last_control_s: plant time of the last fieldbus control write, s.
        watchdog_tripped: whether the comms watchdog action is in force.
        comm_timeout_s: this drive's communication timeout, s (INVT P14.04, Danfoss 8-03;
            0 = off); comm_action: what it does then (INVT P14.05, Danfoss 8-04 [S29]).
            Default: 60 s and freeze (Danfoss 8-03 default 60 s [S29]; "freeze" as a drive
            left at "continue running" behaves).
    """

    f_max_hz: float = 50.0
    ramp_hz_per_s: float = 10.0
    speed_tau_s: float = 0.3
    bus_run: bool = False
    bus_freq_hz: float = 0.0
    f_out_hz: float = 0.0
    f_target_hz: float = 0.0
    speed_hz: float = 0.0
    run: bool = False
    fault_code: int = 0
    last_control_s: float = 0.0
    watchdog_tripped: bool = False
    comm_timeout_s: float = 60.0
    comm_action: WatchdogAction = WatchdogAction.FREEZE
    _frozen_hz: float = 0.0

    def command(self, code: int, now_s: float) -> None:
        """Apply an INVT 2000H command (see :class:`InvtCommand`).

        Raises:
            ValueError: unknown command code.
        """
        cmd = InvtCommand(code)
        self.last_control_s = now_s
        self.watchdog_tripped = False
        if cmd in (InvtCommand.FWD_RUN, InvtCommand.REV_RUN, InvtCommand.FWD_JOG):
            self.bus_run = True
        elif cmd in (InvtCommand.STOP, InvtCommand.COAST_STOP, InvtCommand.JOG_STOP):
            self.bus_run = False
            if cmd is InvtCommand.COAST_STOP:
                self.f_out_hz = 0.0
        elif cmd is InvtCommand.FAULT_RESET:
            self.fault_code = 0

    def set_frequency(self, hz: float, now_s: float) -> None:
        """Apply a 2001H frequency reference, clipped to 0…f_max, Hz."""
        self.bus_freq_hz = min(max(hz, 0.0), self.f_max_hz)
        self.last_control_s = now_s
        self.watchdog_tripped = False

    def bus_target(
        self, now_s: float, timeout_s: float, action: WatchdogAction
    ) -> tuple[bool, float]:
        """(run, reference Hz) under fieldbus control, after the comms watchdog.

        ``timeout_s`` ≤ 0 disables the watchdog (Inovance Fd-04 = 0.0, [S30]).
        """
        expired = timeout_s > 0 and now_s - self.last_control_s > timeout_s
        if expired and action is not WatchdogAction.OFF:
            if not self.watchdog_tripped:
                self.watchdog_tripped = True
                self._frozen_hz = self.f_out_hz
                if action is WatchdogAction.STOP_TRIP:
                    self.fault_code = FAULT_COMMS
            if action is WatchdogAction.FREEZE:
                return self.f_out_hz > 0.0 or self.bus_run, self._frozen_hz
            if action is WatchdogAction.MAX:
                return True, self.f_max_hz
            if action is WatchdogAction.LOCAL:  # the plant switches to auto; hold until then
                return self.f_out_hz > 0.0 or self.bus_run, self._frozen_hz
            return False, 0.0
        return self.bus_run, self.bus_freq_hz

    def step(self, dt_s: float, run: bool, ref_hz: float) -> None:
        """Advance ramps and speed by ``dt_s`` with the given run command and reference."""
        if self.fault_code:
            run = False
            self.f_out_hz = 0.0  # a tripped drive coasts
        self.run = run
        self.f_target_hz = min(max(ref_hz, 0.0), self.f_max_hz) if run else 0.0
        step = self.ramp_hz_per_s * dt_s
        delta = self.f_target_hz - self.f_out_hz
        self.f_out_hz += max(-step, min(step, delta))
        alpha = min(1.0, dt_s / self.speed_tau_s)
        self.speed_hz += (self.f_out_hz - self.speed_hz) * alpha
        if self.f_out_hz == 0.0 and self.speed_hz < 0.05:
            self.speed_hz = 0.0

    @property
    def status(self) -> InvtStatus:
        """INVT 2100H status word 1."""
        if self.fault_code:
            return InvtStatus.FAULT
        if self.run or self.f_out_hz > 0.0:
            return InvtStatus.FWD_RUNNING
        return InvtStatus.STOPPED
