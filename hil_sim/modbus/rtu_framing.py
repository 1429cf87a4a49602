"""Pure Modbus RTU framing: CRC-16/MODBUS, character timing, and request frame assembly.

Sources: Modbus over Serial Line Specification and Implementation Guide V1.02 (MSL):

* §2.5.1 RTU frame: address (1 byte), PDU, CRC (2 bytes, low byte first);
* §2.5.1.1: a frame ends with a silent interval of at least 3.5 character times (t3.5); above
  19200 baud fixed values are recommended: t1.5 = 750 µs, t3.5 = 1.750 ms;
* §2.5.1.2 / §6.2.2: CRC-16 with polynomial 0xA001 (reflected 0x8005), initial value 0xFFFF;
* §2.5.1: one character is 1 start bit, 8 data bits, 1 parity bit (or a second stop bit when no
  parity), 1 stop bit -- 11 bits. Here the caller's actual settings are counted as configured.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil_sim.modbus.pdu import UNKNOWN_LENGTH, request_pdu_length

T35_FIXED_S = 0.00175  # MSL §2.5.1.1, baud rates above 19200
MIN_FRAME = 4  # address + function code + CRC (2)
MAX_FRAME = 256  # MSL §2.5.1: RTU ADU max 256 bytes


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (poly 0xA001 reflected, init 0xFFFF), as an int 0..65535."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def crc_bytes(data: bytes) -> bytes:
    """The two CRC bytes to append to ``data``, low byte first (``01 03 00 00 00 0A`` ->
    ``C5 CD``)."""
    return crc16(data).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    """True if ``frame`` (address + PDU + CRC) is at least 4 bytes and its CRC matches."""
    return len(frame) >= MIN_FRAME and crc_bytes(frame[:-2]) == frame[-2:]


def bits_per_char(bytesize: int = 8, parity: str = "E", stopbits: int = 1) -> int:
    """Bits on the wire per character: 1 start + data + (1 if parity != "N") + stop bits."""
    if parity not in ("N", "E", "O", "M", "S"):
        raise ValueError(f"parity must be one of N, E, O, M, S; got {parity!r}")
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def wire_time(n_bytes: int, baudrate: int, bits: int) -> float:
    """Seconds that ``n_bytes`` characters of ``bits`` bits take on the wire at ``baudrate``."""
    return n_bytes * bits / baudrate


def t35(baudrate: int, bits: int) -> float:
    """The inter-frame silent interval t3.5 in seconds (MSL §2.5.1.1)."""
    return T35_FIXED_S if baudrate > 19200 else 3.5 * bits / baudrate


@dataclass(frozen=True, slots=True)
class RxFrame:
    """One received frame: ``adu`` bytes, ``first_byte_at`` (loop time, s), ``crc_ok``."""

    adu: bytes
    first_byte_at: float
    crc_ok: bool


class RtuFrameAssembler:
    """Cuts a received byte stream into RTU request frames. Pure: the caller passes the time.

    A frame ends when the expected length for its function code is reached (FC01-06: 8 bytes;
    FC15/16: 9 + byte count) or, for other function codes and for truncated frames, when the
    caller reports t3.5 of silence with :meth:`silence`. After a frame with a bad CRC, bytes are
    discarded until the next silence (the receiver has lost sync, MSL §2.5.1.1).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._first_at = 0.0
        self._discarding = False

    @property
    def idle(self) -> bool:
        """True when no partial frame is pending and the assembler is in sync."""
        return not self._buf and not self._discarding

    def feed(self, data: bytes, now: float) -> list[RxFrame]:
        """Add received bytes; return the frames completed by length."""
        if self._discarding:
            return []
        if not self._buf:
            self._first_at = now
        self._buf += data
        frames: list[RxFrame] = []
        while len(self._buf) >= 2:
            n = request_pdu_length(bytes(self._buf[1:7]))
            if n is None or n == UNKNOWN_LENGTH:
                break
            total = 1 + n + 2
            if total > MAX_FRAME:
                break  # cannot be a valid request; wait for silence
            if len(self._buf) < total:
                break
            adu = bytes(self._buf[:total])
            del self._buf[:total]
            frame = RxFrame(adu, self._first_at, crc_ok(adu))
            frames.append(frame)
            self._first_at = now
            if not frame.crc_ok:
                self._buf.clear()
                self._discarding = True
                break
        if len(self._buf) > MAX_FRAME:
            frames.append(RxFrame(bytes(self._buf), self._first_at, False))
            self._buf.clear()
            self._discarding = True
        return frames

    def silence(self) -> list[RxFrame]:
        """The line was silent for t3.5: whatever is buffered is a whole frame. Resyncs."""
        self._discarding = False
        if not self._buf:
            return []
        adu = bytes(self._buf)
        self._buf.clear()
        return [RxFrame(adu, self._first_at, crc_ok(adu))]
