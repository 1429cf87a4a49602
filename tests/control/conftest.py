"""Fixtures of the control tests: leak check (tasks and threads)."""

from __future__ import annotations

from tests.leaks import no_leaks  # noqa: F401  (autouse: fails tests that leak tasks or threads)
