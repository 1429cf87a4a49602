"""Side by side with the ThingsBoard IoT Gateway 3.8.5 (issue 17): ``python -m
tests.benchmarks.peer``. See :mod:`tests.benchmarks.peer.__main__`."""
