"""Hook specifications: how a module hands its plugins to the harness.

A plugin module implements any of these hooks, each returning a list of plugin classes:

    from harness import Generator, hookimpl

    class MyGenerator(Generator):
        name = "mygen"
        ...

    @hookimpl
    def harness_generators():
        return [MyGenerator]
"""
from __future__ import annotations

import pluggy

PROJECT = "harness"
ENTRY_POINT_GROUP = "harness"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def harness_datasets() -> list[type]:
    """Return the `Dataset` subclasses this module provides (grid files name them in [[dataset]])."""


@hookspec
def harness_generators() -> list[type]:
    """Return the `Generator` subclasses this module provides (grid files name them in [[generator]])."""


@hookspec
def harness_classifiers() -> list[type]:
    """Return the `Classifier` subclasses this module provides (grid files name them in [[classifier]])."""


HOOK_FOR_KIND = {"dataset": "harness_datasets", "generator": "harness_generators", "classifier": "harness_classifiers"}
