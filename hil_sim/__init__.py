"""pumproom-edge hardware-in-the-loop simulator: a booster pump room behind real protocol servers.

* :mod:`hil_sim.plant` — pure, seeded physics (``Plant.step(dt_s)``), built from
  :mod:`hil_sim.hydraulics`, :mod:`hil_sim.drive`, :mod:`hil_sim.controller`,
  :mod:`hil_sim.environment`.
* :mod:`hil_sim.devices` — register maps of real-device style (cabinet, flow meter, VFDs,
  pressure transmitters) and the OPC UA analyser/room server.
* :mod:`hil_sim.modbus` — the Modbus TCP/RTU slave stack the devices are served by.
* :mod:`hil_sim.sim` — the running simulator; :mod:`hil_sim.commands` the control-port commands;
  :mod:`hil_sim.scenario` scenario files (played by :mod:`hil_sim.scenario_run`), with the
  fault catalogue :mod:`hil_sim.faults` (hil_sim/README.md); :mod:`hil_sim.configgen` the
  matching agent config;
  :mod:`hil_sim.cli` the ``hil-sim`` command. ``hil_sim`` never imports ``agent``.
"""
