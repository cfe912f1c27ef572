"""The plugin registry: discovers plugins through pluggy and looks them up by name.

Discovery order: the entry-point group "harness" (built-ins are registered there exactly like
a third party's), then plugin files given with --plugins. Names blocked with --block are
skipped, whether they name an entry point or a single plugin.

Plugins load lazily: a package may ship a manifest (MANIFEST_FILE in its top-level package, written
by `python -m harness.registry PACKAGE` from the real classes) listing per entry-point module its
plugins' kind, name, version, defaults and configs. Their names and metadata are then known
without importing the module (and diffusers, transformers, ...); the module is imported when a
plugin's class is first used, and its classes are checked against the manifest. Entry points
without a manifest entry and plugin files are imported at once.

Hooks are validated when a module registers: a function named like a hook (`harness_*`) that is
not one of the hookspecs, marked or not, is an error naming the hooks that exist.

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
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import sys
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from harness import hookspecs
from harness.cache import files_digest
from harness.contracts import Classifier, ConfigError, Dataset, Generator, PluginBase

BASE_FOR_KIND = {"dataset": Dataset, "generator": Generator, "classifier": Classifier}
MANIFEST_FILE = "harness_plugins.json"
#: what a manifest records of each plugin class (plus "class", its name in the module)
MANIFEST_FIELDS = ("kind", "name", "version", "defaults", "configs")


class PluginError(RuntimeError):
    """A plugin could not be loaded or is malformed; the message names its origin."""


class PluginInfo:
    """A plugin's kind, name and version; its class (imported on first use) and source digest."""

    def __init__(self, kind: str, name: str, version: str, origin: str, cls: type | Callable[[], type],
                 metadata: dict | None = None) -> None:
        self.kind, self.name, self.version, self.origin = kind, name, version, origin
        self._metadata = metadata
        self._load = cls if not inspect.isclass(cls) else (lambda: cls)

    @cached_property
    def cls(self) -> type:
        return self._load()

    @property
    def metadata(self) -> dict:
        """kind, name, version, defaults and configs: from the manifest, else from the class."""
        return self._metadata if self._metadata is not None else manifest_entry(self.cls)

    @cached_property
    def source_digest(self) -> str:
        return source_digest(self.cls)

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        return self.metadata["configs"]

    def __repr__(self) -> str:
        return f"PluginInfo({self.kind} {self.name!r} v{self.version}, {self.origin})"


class Registry:
    def __init__(self, plugin_files: Iterable[str | Path] = (), blocked: Iterable[str] = (),
                 entry_points: bool = True) -> None:
        self.blocked = set(blocked)
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in hookspecs.HOOK_FOR_KIND}
        self._modules: dict[str, dict[tuple[str, str], type]] = {}  # lazily imported: (kind, name) -> class
        if entry_points:
            self._load_entry_points()
        for path in plugin_files:
            self._load_file(Path(path))

    # -- discovery -------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        for ep in sorted(importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.blocked:
                continue
            dist = ep.dist.name if ep.dist else "?"
            source = f"entry point {dist}:{ep.name}"
            listed = _package_manifest(ep.module).get(ep.module) if not ep.attr else None
            if listed is not None:
                for entry in listed:
                    self._add(PluginInfo(entry["kind"], entry["name"], str(entry["version"]),
                                         f"{source} ({ep.module}:{entry.get('class', '?')})",
                                         lambda ep=ep, entry=entry, source=source: self._lazy_class(ep, entry, source),
                                         {k: entry[k] for k in MANIFEST_FIELDS}))
                continue
            self._register(self._import_entry_point(ep, dist), source)

    @staticmethod
    def _import_entry_point(ep: importlib.metadata.EntryPoint, dist: str) -> ModuleType:
        try:
            return ep.load()
        except Exception as exc:  # a broken third-party package must say which one it is
            raise PluginError(f"entry point '{ep.name}' ({ep.value}) of package '{dist}' failed to load: {exc}") from exc

    def _lazy_class(self, ep: importlib.metadata.EntryPoint, entry: dict, source: str) -> type:
        """Import the entry point's module (once), register its hooks and return the class the
        manifest names, refusing a manifest that no longer matches the code."""
        if ep.module not in self._modules:
            module = self._import_entry_point(ep, ep.dist.name if ep.dist else "?")
            self._validate_hooks(module, source)
            self._modules[ep.module] = {(kind, self._check(kind, cls, source).name): cls
                                        for kind, cls in self._hook_classes(module)}
        cls = self._modules[ep.module].get((entry["kind"], entry["name"]))
        regenerate = f"regenerate it with `python -m harness.registry {ep.module.split('.')[0]}`"
        if cls is None:
            raise PluginError(f"{source}: {MANIFEST_FILE} lists {entry['kind']} '{entry['name']}', which "
                              f"{ep.module} no longer defines; {regenerate}")
        actual, listed = manifest_entry(cls), _json_normal(entry)
        stale = [f"{key}: listed {listed.get(key)!r}, code {actual[key]!r}" for key in actual if listed.get(key) != actual[key]]
        if stale:
            raise PluginError(f"{source}: {MANIFEST_FILE} is stale for {entry['kind']} '{entry['name']}' "
                              f"({'; '.join(stale)}); {regenerate}")
        return cls

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
        """Register an imported module's plugins now."""
        if self.manager.is_registered(module):
            return
        self._validate_hooks(module, source)
        for kind, cls in self._hook_classes(module):
            self._add(self._check(kind, cls, source))

    def _validate_hooks(self, module: ModuleType, source: str) -> None:
        """Register the module with pluggy, refusing misnamed hooks and hooks of the wrong signature."""
        hooks = sorted(hookspecs.HOOK_FOR_KIND.values())
        unknown = [name for name, value in vars(module).items()
                   if name.startswith(f"{hookspecs.PROJECT}_") and callable(value) and name not in hooks]
        if unknown:
            hints = [f"'{name}'" + (f" (did you mean '{close[0]}'?)" if (close := difflib.get_close_matches(name, hooks, n=1))
                                    else "") for name in unknown]
            raise PluginError(f"{source}: {', '.join(hints)} is not a harness hook, so its plugins would be ignored; "
                              f"the hooks are {', '.join(hooks)}")
        try:
            self.manager.register(module, name=source)
            self.manager.check_pending()  # @hookimpl functions that match no hookspec
        except pluggy.PluginValidationError as exc:
            detail = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise PluginError(f"{source}: {detail}; the hooks are {', '.join(hooks)}") from exc

    def _hook_classes(self, module: ModuleType) -> list[tuple[str, type]]:
        """(kind, class) for every class the module's hook implementations return."""
        found = []
        for kind, hook_name in hookspecs.HOOK_FOR_KIND.items():
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                if impl.plugin is module:
                    found += [(kind, cls) for cls in impl.function() or []]
        return found

    def _add(self, info: PluginInfo) -> None:
        if info.name in self.blocked:
            return
        found = self.plugins[info.kind]
        if info.name in found:
            raise PluginError(
                f"two {info.kind} plugins are named '{info.name}': {found[info.name].origin} and {info.origin}; "
                f"rename one, or block one with --block"
            )
        found[info.name] = info

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
        return PluginInfo(kind, cls.name, str(cls.version), f"{source} ({location})", cls)

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


# ---- manifests: plugin metadata readable without importing the plugin ----

def manifest_entry(cls: type) -> dict:
    """What a manifest records of one plugin class, as JSON values."""
    return _json_normal({"kind": cls.kind, "name": cls.name, "version": str(cls.version), "defaults": cls.defaults,
                         "configs": cls.configs, "class": cls.__qualname__})


def _json_normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


_MANIFESTS: dict[str, dict] = {}


def _package_manifest(module: str) -> dict[str, list[dict]]:
    """The manifest of the module's top-level package ({} when it has none), read without
    importing the module (only the top-level package's directory is looked up)."""
    package = module.split(".")[0]
    if package not in _MANIFESTS:
        spec = importlib.util.find_spec(package)
        folders = list(spec.submodule_search_locations or []) if spec else []
        files = [Path(folder) / MANIFEST_FILE for folder in folders if (Path(folder) / MANIFEST_FILE).is_file()]
        try:
            _MANIFESTS[package] = json.loads(files[0].read_text())["modules"] if files else {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PluginError(f"{files[0]} is not a plugin manifest ({exc}); regenerate it with "
                              f"`python -m harness.registry {package}`") from exc
    return _MANIFESTS[package]


def build_manifest(package: str) -> dict:
    """The manifest of a package's entry points in the "harness" group, from the real classes."""
    registry = Registry(entry_points=False)
    modules = {}
    eps = importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda e: e.module):
        if ep.module.split(".")[0] != package or ep.attr:
            continue
        module = importlib.import_module(ep.module)
        registry._validate_hooks(module, f"entry point {ep.name}")
        modules[ep.module] = [manifest_entry(cls) for _, cls in registry._hook_classes(module)]
    return {"about": f"written by `python -m harness.registry {package}` from the plugin classes; "
                     "tests/test_cli_startup.py checks it against them", "modules": modules}


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


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "plugins"
    spec = importlib.util.find_spec(target)
    out = Path(list(spec.submodule_search_locations)[0]) / MANIFEST_FILE
    out.write_text(json.dumps(build_manifest(target), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
