"""Table tests of the pure parts: PDU handling, CRC, RTU framing, RegisterBank."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil_sim.modbus.faults import UnitFaults
from hil_sim.modbus.pdu import UNKNOWN_LENGTH, decode_request, handle_request, request_pdu_length
from hil_sim.modbus.rtu_framing import (
    RtuFrameAssembler,
    bits_per_char,
    crc16,
    crc_bytes,
    crc_ok,
    t35,
)
from hil_sim.modbus.slave import ModbusError, RegisterBank

from .conftest import make_bank

H = bytes.fromhex

# (request PDU hex, response PDU hex) against make_bank(1)
PDU_TABLE = [
    # FC03 read holding 0..2 -> 1000, 1001, 1002
    ("03 0000 0003", "03 06 03E8 03E9 03EA"),
    # FC04 read input registers 100..101
    ("04 0064 0002", "04 04 0064 0065"),
    # FC02 discrete inputs 0..9: odd ones set -> 0b10101010, 0b10
    ("02 0000 000A", "02 02 AA 02"),
    # FC01 coils 0..7 all off
    ("01 0000 0008", "01 01 00"),
    # FC05 write coil 3 on -> echo
    ("05 0003 FF00", "05 0003 FF00"),
    # FC06 write holding 5 = 0x1234 -> echo
    ("06 0005 1234", "06 0005 1234"),
    # FC15 write coils 0..9 = 1,0,1,1,0,0,1,1, 1,0 -> address, quantity
    ("0F 0000 000A 02 CD 01", "0F 0000 000A"),
    # FC16 write holding 10..11
    ("10 000A 0002 04 0001 0002", "10 000A 0002"),
    # --- exception 1: unsupported function codes
    ("07", "87 01"),
    ("2B 0E 01 00", "AB 01"),
    ("08 0000 1234", "88 01"),
    # --- exception 3: quantities (MAP V1.1b3 §6)
    ("03 0000 0000", "83 03"),
    ("03 0000 007E", "83 03"),  # 126 registers
    ("04 0064 007E", "84 03"),
    ("01 0000 0000", "81 03"),
    ("01 0000 07D1", "81 03"),  # 2001 bits
    ("02 0000 07D1", "82 03"),
    ("0F 0000 07B1 F7" + "00" * 247, "8F 03"),  # 1969 coils
    ("10 0000 007C F8" + "00" * 248, "90 03"),  # 124 registers
    ("10 000A 0002 03 0001 00", "90 03"),  # byte count != 2*N
    ("0F 0000 000A 01 CD", "8F 03"),  # byte count != ceil(N/8)
    ("05 0003 1234", "85 03"),  # coil value neither 0000 nor FF00
    ("03 0000", "83 03"),  # truncated
    ("03 0000 0001 00", "83 03"),  # trailing byte
    # --- exception 2: address range beyond 65535, unmapped, read-only
    ("03 FFFF 0002", "83 02"),
    ("03 00C7 0002", "83 02"),  # 199 mapped, 200 not
    ("04 0000 0001", "84 02"),
    ("06 00C8 0001", "86 02"),
    ("0F 001F 0002 01 03", "8F 02"),  # coil 31 mapped, 32 not
    # --- quantity limits exactly allowed: 125 registers beyond the map -> 2, not 3
    ("03 0000 007D", "03 FA" + "".join(f"{1000 + a:04X}" for a in range(125))),
    ("03 004B 007D", "03 FA" + "".join(f"{1075 + a:04X}" for a in range(125))),
    ("03 004C 007D", "83 02"),  # 76..200, 200 unmapped
]


@pytest.mark.parametrize(("request_hex", "response_hex"), PDU_TABLE)
def test_pdu_table(request_hex: str, response_hex: str) -> None:
    bank = make_bank(1)
    assert handle_request(bank, H(request_hex)).hex() == H(response_hex).hex()


def test_writes_change_the_bank_and_call_on_write() -> None:
    bank = make_bank(1)
    seen = []
    bank.on_write = lambda table, address, values: seen.append((table, address, values))
    handle_request(bank, H("0F 0000 000A 02 CD 01"))
    handle_request(bank, H("10 000A 0002 04 0001 FFFF"))
    handle_request(bank, H("05 001F FF00"))
    pattern = [True, False, True, True, False, False, True, True, True, False]
    assert bank.get("coil", 0, 10) == pattern
    assert bank.get("holding_register", 10, 2) == [1, 0xFFFF]
    assert bank.get("coil", 31, 1) == [True]
    assert seen == [
        ("coil", 0, pattern),
        ("holding_register", 10, [1, 0xFFFF]),
        ("coil", 31, [True]),
    ]


def test_failed_write_changes_nothing() -> None:
    bank = make_bank(1)
    bank.define("holding_register", 300, [7])  # read-only
    bank.define("holding_register", 299, [8], writable=True)
    assert handle_request(bank, H("10 012B 0002 04 0001 0002")) == H("90 02")
    assert bank.get("holding_register", 299, 2) == [8, 7]


def test_injected_exception_hits_only_requests_touching_the_address() -> None:
    bank = make_bank(1)
    faults = UnitFaults(exceptions={("holding_register", 10): 2, ("coil", 3): 6})
    assert handle_request(bank, H("03 0005 000A"), faults) == H("83 02")  # 5..14
    assert handle_request(bank, H("03 0000 000A"), faults)[:2] == H("03 14")  # 0..9
    assert handle_request(bank, H("03 000B 000A"), faults)[:2] == H("03 14")  # 11..20
    assert handle_request(bank, H("04 0064 000A"), faults)[:2] == H("04 14")  # other table
    assert handle_request(bank, H("05 0003 FF00"), faults) == H("85 06")
    assert bank.get("coil", 3, 1) == [False]  # not executed


def test_slave_failure_answers_device_failure() -> None:
    class Broken(RegisterBank):
        def read_registers(self, table, address, count):
            raise RuntimeError("sensor board gone")

    assert handle_request(Broken(1), H("03 0000 0001")) == H("83 04")


def test_on_write_may_answer_an_exception() -> None:
    bank = make_bank(1)

    def refuse(table, address, values):
        raise ModbusError(6)

    bank.on_write = refuse
    assert handle_request(bank, H("06 0000 0001")) == H("86 06")


def test_decode_request_fields() -> None:
    req = decode_request(H("10 000A 0002 04 0001 0002"))
    assert (req.function_code, req.table, req.address, req.count, req.values) == (
        16,
        "holding_register",
        10,
        2,
        (1, 2),
    )
    assert req.is_write
    assert not decode_request(H("01 0000 0001")).is_write


@pytest.mark.parametrize(
    ("head", "length"),
    [
        ("", None),
        ("03", 5),
        ("06 0000", 5),
        ("10 0000 0002", None),
        ("10 0000 0002 04", 10),
        ("0F 0000 000A 02", 8),
        ("07", UNKNOWN_LENGTH),
    ],
)
def test_request_pdu_length(head: str, length: int | None) -> None:
    assert request_pdu_length(H(head)) == length


# --- CRC and timing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "crc"),
    [
        ("01 03 00 00 00 0A", "C5 CD"),  # brief / common reference vector
        ("01 03 00 00 00 01", "84 0A"),
        ("11 03 00 6B 00 03", "76 87"),  # MSL V1.02 / Modbus.org example, slave 17
        ("01 06 00 01 00 03", "98 0B"),
    ],
)
def test_crc_vectors(frame: str, crc: str) -> None:
    assert crc_bytes(H(frame)) == H(crc)
    assert crc_ok(H(frame) + H(crc))
    assert not crc_ok(H(frame) + H(crc)[::-1])


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS catalogue check value


def test_char_and_t35_timing() -> None:
    assert bits_per_char(8, "E", 1) == 11
    assert bits_per_char(8, "N", 1) == 10
    assert bits_per_char(8, "N", 2) == 11
    assert t35(9600, 11) == pytest.approx(3.5 * 11 / 9600)
    assert t35(19200, 11) == pytest.approx(3.5 * 11 / 19200)
    assert t35(115200, 11) == 0.00175
    with pytest.raises(ValueError):
        bits_per_char(8, "X", 1)


# --- RTU frame assembly ---------------------------------------------------------------------


def _adu(hexstr: str) -> bytes:
    return H(hexstr) + crc_bytes(H(hexstr))


def test_assembler_cuts_by_length_and_keeps_pipelined_frames() -> None:
    asm = RtuFrameAssembler()
    a, b = _adu("01 03 0000 000A"), _adu("02 10 0000 0001 02 1234")
    frames = asm.feed(a[:3], 1.0)
    assert frames == []
    frames = asm.feed(a[3:] + b[:5], 1.001)
    assert [(f.adu, f.first_byte_at, f.crc_ok) for f in frames] == [(a, 1.0, True)]
    frames = asm.feed(b[5:], 1.002)
    assert [f.adu for f in frames] == [b] and frames[0].crc_ok
    assert asm.idle


def test_assembler_bad_crc_discards_until_silence() -> None:
    asm = RtuFrameAssembler()
    bad = bytearray(_adu("01 03 0000 000A"))
    bad[-1] ^= 1
    frames = asm.feed(bytes(bad) + _adu("01 03 0000 0001"), 0.0)
    assert [f.crc_ok for f in frames] == [False]
    assert asm.feed(_adu("01 03 0000 0001"), 0.001) == []  # still out of sync
    assert asm.silence() == []
    good = _adu("01 03 0000 0001")
    assert [f.adu for f in asm.feed(good, 0.01)] == [good]


def test_assembler_unknown_function_ends_at_silence() -> None:
    asm = RtuFrameAssembler()
    frame = _adu("01 07")
    assert asm.feed(frame, 0.0) == []
    out = asm.silence()
    assert [(f.adu, f.crc_ok) for f in out] == [(frame, True)]


def test_assembler_truncated_frame_is_bad_at_silence() -> None:
    asm = RtuFrameAssembler()
    assert asm.feed(_adu("01 03 0000 000A")[:5], 0.0) == []
    assert [f.crc_ok for f in asm.silence()] == [False]


# --- RegisterBank ---------------------------------------------------------------------------


def test_register_bank_plant_side_errors() -> None:
    bank = RegisterBank(3)
    bank.define("holding_register", 0, [1, 2])
    with pytest.raises(ValueError):
        bank.define("holding_register", 1, [5])  # overlap
    with pytest.raises(ValueError):
        bank.define("input_register", 0, [1], writable=True)
    with pytest.raises(ValueError):
        bank.define("holding_register", 10, [70000])
    with pytest.raises(ValueError):
        bank.define("tank", 0, [1])
    with pytest.raises(KeyError):
        bank.set("holding_register", 1, [1, 2])
    with pytest.raises(KeyError):
        bank.get("holding_register", 0, 3)
    bank.set("holding_register", 1, 9)
    assert bank.get("holding_register", 0, 2) == [1, 9]
    with pytest.raises(ModbusError) as exc:
        bank.write_registers(0, [1])  # read-only to the master
    assert exc.value.code == 2


# --- robustness: any bytes in, a well-formed answer out --------------------------------------


@given(st.binary(min_size=1, max_size=253))
def test_any_pdu_gets_a_response_or_an_exception(pdu: bytes) -> None:
    response = handle_request(make_bank(1), pdu)
    if response[0] & 0x80:
        assert response == bytes((pdu[0] | 0x80, response[1])) and response[1] in (1, 2, 3)
    else:
        assert response[0] == pdu[0] and pdu[0] in (1, 2, 3, 4, 5, 6, 15, 16)


@given(st.lists(st.binary(max_size=40), max_size=10))
def test_assembler_never_emits_a_good_frame_that_is_not_crc_valid(chunks: list[bytes]) -> None:
    asm = RtuFrameAssembler()
    frames = []
    for i, chunk in enumerate(chunks):
        frames += asm.feed(chunk, float(i))
    frames += asm.silence()
    assert asm.idle
    for frame in frames:
        assert frame.crc_ok == crc_ok(frame.adu)
