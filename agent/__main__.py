"""``python -m agent``: the same as the ``pumproom-agent`` command."""

from agent.cli import main

main()
