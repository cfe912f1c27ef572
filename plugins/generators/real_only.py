"""`none`: the real-only baseline. Trains nothing and synthesises nothing.

Every leaderboard compares methods against this row (same data, scenario and classifier).
"""
from __future__ import annotations

from harness import Generator, hookimpl


class RealOnly(Generator):
    name = "none"
    version = "1"
    produces_images = False


@hookimpl
def harness_generators() -> list[type]:
    return [RealOnly]
