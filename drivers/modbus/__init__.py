"""Modbus TCP and RTU: pure read planning (plan), pure decoding (codec), the pymodbus link (link)
and the driver (client)."""
