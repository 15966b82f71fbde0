"""Benchmarks of voxkey: numbers, not tests.

* `voxkey bench` (bench.cli): recordings through the real pipeline -- latency
  waterfall per utterance, LLM time to first token and tokens/s, CPU and memory per
  stage, bus hop latencies and losses, the same work done raw in one process for
  comparison, a memory budget for the production models, and optionally a CPU
  pinning experiment and the bus microbenchmark.
* `python -m bench.bus` (bench.bus): frames/s and hop latency of the bus itself.
"""

from bench.cli import add_cli

__all__ = ["add_cli"]
