"""Alarms at the edge, evaluated on the gateway whether or not the uplink is up (issue 14).

Modules: :mod:`.rules` (compiled rules and flood-control groups), :mod:`.evaluate` (the pure
rule evaluator), :mod:`.state` (the ISA-18.2 state machine), :mod:`.engine` (both together),
:mod:`.faults` (vendor fault codes → common causes), :mod:`.commands` (command parameters),
:mod:`.runtime` (the agent stage: tick, persist, publish). Config: :mod:`agent.config.alarms`.
"""
