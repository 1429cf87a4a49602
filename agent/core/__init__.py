"""The shared leaf of pumproom-edge: what ``drivers/``, ``agent/control/`` and the pipeline share.

Readings, samples, quality and driver errors (:mod:`agent.core.model`), the one backoff policy
and the wall clock (also :mod:`agent.core.model`), the async helpers (:mod:`agent.core.aio`),
the health record of a connection (:mod:`agent.core.health`) and the latest-value cache
(:mod:`agent.core.cache`).

This package imports nothing from ``agent/`` outside itself, nor from ``drivers/`` or
``hil_sim/``; ``tests/test_boundaries.py`` checks it, and checks that ``drivers/`` imports only
this package from ``agent/``.
"""
