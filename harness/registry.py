"""The plugin registry: discovers plugins through pluggy and looks them up by name.

Discovery order: the entry-point group "harness" (built-ins are registered there exactly like
a third party's), then plugin files given with --plugins. Names blocked with --block are
skipped, whether they name an entry point or a single plugin.

Each plugin carries a digest of its source, which every cache key that depends on the plugin
includes, so an edited plugin recomputes without a version bump. It covers the files of the
classes in the plugin's MRO that belong to the plugin's own top-level package or to harness
(e.g. harness/contracts.py), plus every module of the plugin's own package that those modules
reference at module level (imported helpers such as plugins/generators/_preferences.py), followed
transitively. Third-party libraries (torch, diffusers, ...) and harness helpers a plugin merely
calls are not part of it; their versions are in the run manifest.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from typing import Iterable

import pluggy

from harness import hookspecs
from harness.cache import files_digest
from harness.contracts import Classifier, ConfigError, Dataset, Generator, PluginBase

BASE_FOR_KIND = {"dataset": Dataset, "generator": Generator, "classifier": Classifier}


class PluginError(RuntimeError):
    """A plugin could not be loaded or is malformed; the message names its origin."""


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    version: str
    cls: type
    origin: str  # where it came from: entry point / file, with module:line
    source_digest: str = ""  # see source_digest()


class Registry:
    def __init__(self, plugin_files: Iterable[str | Path] = (), blocked: Iterable[str] = (),
                 entry_points: bool = True) -> None:
        self.blocked = set(blocked)
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self._sources: dict[object, str] = {}
        if entry_points:
            self._load_entry_points()
        for path in plugin_files:
            self._load_file(Path(path))
        self.plugins = self._collect()

    # -- discovery -------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        for ep in sorted(importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.blocked:
                continue
            dist = ep.dist.name if ep.dist else "?"
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party package must say which one it is
                raise PluginError(f"entry point '{ep.name}' ({ep.value}) of package '{dist}' failed to load: {exc}") from exc
            self._register(module, f"entry point {dist}:{ep.name}")

    def _load_file(self, path: Path) -> None:
        if not path.is_file():
            raise PluginError(f"plugin file not found: {path}")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
        module_name = f"harness_file_plugin_{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and process workers need the module importable
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise PluginError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc
        self._register(module, f"file {path}")

    def _register(self, module: ModuleType, source: str) -> None:
        if self.manager.is_registered(module):
            return
        self.manager.register(module, name=source)
        self._sources[module] = source

    def _collect(self) -> dict[str, dict[str, PluginInfo]]:
        found: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in hookspecs.HOOK_FOR_KIND}
        for kind, hook_name in hookspecs.HOOK_FOR_KIND.items():
            hook = getattr(self.manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                source = self._sources.get(impl.plugin, impl.plugin_name)
                for cls in impl.function() or []:
                    info = self._check(kind, cls, source)
                    if info.name in self.blocked:
                        continue
                    if info.name in found[kind]:
                        other = found[kind][info.name]
                        raise PluginError(
                            f"two {kind} plugins are named '{info.name}': {other.origin} and {info.origin}; "
                            f"rename one, or block one with --block"
                        )
                    found[kind][info.name] = info
        return found

    @staticmethod
    def _check(kind: str, cls: type, source: str) -> PluginInfo:
        base = BASE_FOR_KIND[kind]
        where = f"{source}"
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            raise PluginError(f"{where}: harness_{kind}s() must return {base.__name__} subclasses, got {cls!r}")
        if not cls.name:
            raise PluginError(f"{where}: {cls.__name__} has no `name`")
        try:
            line = inspect.getsourcelines(cls)[1]
            location = f"{cls.__module__}:{line}"
        except (OSError, TypeError):
            location = cls.__module__
        return PluginInfo(kind, cls.name, str(cls.version), cls, f"{source} ({location})", source_digest(cls))

    # -- lookup ----------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> PluginInfo:
        if kind not in self.plugins:
            raise ConfigError(f"unknown plugin kind '{kind}'; kinds are {sorted(self.plugins)}")
        known = self.plugins[kind]
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown {kind} '{name}'.{hint} Known {kind}s: {', '.join(sorted(known)) or 'none'}")
        return known[name]

    def create(self, kind: str, name: str, params: dict | None = None) -> PluginBase:
        return self.get(kind, name).cls(**(params or {}))

    def all(self) -> list[PluginInfo]:
        return [info for kind in self.plugins for info in sorted(self.plugins[kind].values(), key=lambda i: i.name)]


def source_digest(cls: type) -> str:
    """SHA-256 (20 hex digits) of the source files that define a plugin class (see the module docstring).
    Independent of where the files lie, so one plugin file gives one digest on every machine."""
    return files_digest(plugin_source_files(cls))


def plugin_source_files(cls: type) -> list[str]:
    """The files source_digest() hashes: MRO modules in the plugin's package or harness, and the
    modules of the plugin's package they reference at module level, transitively."""
    own = cls.__module__.split(".")[0]
    pending = [sys.modules[k.__module__] for k in cls.__mro__
               if k.__module__.split(".")[0] in (own, "harness") and k.__module__ in sys.modules]
    seen: dict[str, str] = {}
    while pending:
        module = pending.pop()
        path = getattr(module, "__file__", None)
        if module.__name__ in seen or not path:
            continue
        seen[module.__name__] = path
        pending += [m for m in map(_module_of, vars(module).values())
                    if m is not None and m.__name__.split(".")[0] == own and m.__name__ not in seen]
    return sorted(set(seen.values()))


def _module_of(value: Any) -> ModuleType | None:
    if isinstance(value, ModuleType):
        return value
    name = getattr(value, "__module__", None)
    return sys.modules.get(name) if isinstance(name, str) else None
