"""Benchmarks of issue 8: grading speed (sodl vs otter-grader) and the
speed of ``sodl_ref.kernels``. Run everything with ``make bench`` (or
``python -m bench.run``); the report goes to ``bench/RESULTS.md``."""
