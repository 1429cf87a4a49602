"""pumproom-edge agent: polls a pump room, buffers every sample, uplinks over MQTT."""

__version__ = "0.1.0"
