"""``python -m hil_sim``: the same as the ``hil-sim`` command."""

from hil_sim.cli import main

main()
