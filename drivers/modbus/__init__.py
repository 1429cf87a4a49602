"""Modbus TCP and RTU: pure read planning (``plan``), pure decoding (``codec``), master-side
frames (``frames``), our own transports (``rtu_port``: RS-485 over pyserial + ``add_reader``;
``tcp_port``: asyncio Protocol), the serialised link with counters (``link``), per-unit health
(``health``) and the driver (``client``)."""
