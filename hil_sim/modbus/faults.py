"""Fault injection for the simulated Modbus slaves.

One :class:`Faults` object is shared by the servers and the simulator's control port, which may
change it at run time; servers read it afresh for every request. Faults model what real field
devices and RS-485 adapters do: a device off the bus, a slow device, exception responses on some
addresses, local echo of USB/RS-485 adapters, CRC errors from line noise, a frame split by a slow
UART, line noise before the frame, replies that arrive after the master gave up, Modbus TCP
devices that answer with a wrong transaction id, accept only one TCP client or answer once per
connection, and TCP/RTU gateways whose serial slave is dead (exception 0x0A/0x0B).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class UnitFaults:
    """Faults of one unit id. All durations in seconds.

    Attributes:
        silent: never answer (device off the bus); on RTU a silent unit ignores broadcasts too.
        delay_s: extra delay before the response (the server answers nothing else on that RTU
            link or TCP connection meanwhile).
        exceptions: ``(table, address) -> exception code``; any request whose address range
            touches that address answers with that code and is not executed.
        echo: RTU only: write the request bytes back before the response (an adapter with local
            echo).
        fragment_gap_s: RTU only: if > 0, split the response in two halves with this silent gap
            (longer than t3.5 makes a spec-conforming master drop it).
        corrupt_crc: RTU only: probability 0..1 that the response CRC is corrupted.
        garbage_before: RTU only: bytes written on the line before the response (noise).
        late_reply_s: if > 0, the response is sent this long after the request *without*
            blocking the link: the server goes on serving the next requests and the stale reply
            arrives later (answer after the master's timeout).
        wrong_tid: TCP only: answer with the transaction id plus one (mod 65536).
        reset: TCP only: probability 0..1 that a request is answered by resetting the TCP
            connection (RST) instead (a device or gateway that restarts or drops its socket).
        gateway_error: TCP only: 0 (off), 0x0A or 0x0B: the server plays a Modbus TCP/RTU
            gateway whose serial slave with this unit id is dead, answering every request for
            the unit with exception 0x0A GATEWAY PATH UNAVAILABLE or 0x0B GATEWAY TARGET DEVICE
            FAILED TO RESPOND (Modbus Application Protocol V1.1b3 §7). Combine with ``delay_s``
            for a gateway that answers 0x0B only after its own serial response timeout.
    """

    silent: bool = False
    delay_s: float = 0.0
    exceptions: dict[tuple[str, int], int] = field(default_factory=dict)
    echo: bool = False
    fragment_gap_s: float = 0.0
    corrupt_crc: float = 0.0
    garbage_before: bytes = b""
    late_reply_s: float = 0.0
    wrong_tid: bool = False
    reset: float = 0.0
    gateway_error: int = 0

    def exception_for(self, table: str, address: int, count: int) -> int | None:
        """The injected exception code for a request on ``table`` covering
        ``address .. address+count-1``, or None. The lowest faulted address wins."""
        hits = [
            (a, code)
            for (t, a), code in self.exceptions.items()
            if t == table and address <= a < address + count
        ]
        return min(hits)[1] if hits else None


class Faults:
    """All fault settings of one simulator: per-unit :class:`UnitFaults` plus server-wide ones.

    Attributes:
        single_client: TCP servers accept only one connection at a time; a second connection
            is closed at once (as many small embedded Modbus TCP devices do).
        once_per_connection: TCP servers answer only the first request of each connection and
            then close it (devices whose Modbus TCP stack serves one request per connection).
        rng: random source for probabilistic faults (seed it for reproducible runs).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._units: dict[int, UnitFaults] = {}
        self.single_client = False
        self.once_per_connection = False
        self.rng = random.Random(seed)

    def unit(self, unit_id: int) -> UnitFaults:
        """The mutable faults of ``unit_id``, created (all off) on first use."""
        faults = self._units.get(unit_id)
        if faults is None:
            faults = self._units[unit_id] = UnitFaults()
        return faults

    def peek(self, unit_id: int) -> UnitFaults | None:
        """The faults of ``unit_id`` if any were ever set, without creating them."""
        return self._units.get(unit_id)

    def clear(self) -> None:
        """Remove every fault (all units healthy, multiple TCP clients allowed)."""
        self._units.clear()
        self.single_client = False
        self.once_per_connection = False
