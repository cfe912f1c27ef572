"""Static scan for unsafe loaders: code that could run whatever a file contains.

Records, caches and weights must never be unpickled (STYLE.md): records are JSON or Parquet,
arrays npz with allow_pickle=False, weights safetensors or torch.load(weights_only=True). This
scanner reads Python source (it imports nothing) and reports every pickle-family import, every
torch.load without weights_only=True, np.load with allow_pickle set, yaml.load without a safe
loader, pandas pickles, TorchScript archives and eval/exec, with file and line. The test suite
runs it over harness/, plugins/ and tests/; a method author can run it over a plugin file.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

#: modules whose loading runs code stored in the file
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def scan_source(text: str, path: str = "<source>") -> list[Finding]:
    tree = ast.parse(text, filename=path)
    aliases = _aliases(tree)
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for module in _imported_modules(node):
                if module.split(".")[0] in PICKLE_MODULES:
                    findings.append(Finding(path, node.lineno, f"imports '{module}', which loads by running code "
                                                                "from the file; use JSON, Parquet, npz or safetensors"))
        elif isinstance(node, ast.Call):
            problem = _unsafe_call(node, aliases)
            if problem:
                findings.append(Finding(path, node.lineno, problem))
    return findings


def scan_paths(roots: Iterable[Path], base: Path | None = None) -> list[Finding]:
    """Scan every .py file under the roots; paths are reported relative to `base`."""
    findings = []
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for file in files:
            shown = file.relative_to(base).as_posix() if base else str(file)
            findings.extend(scan_source(file.read_text(), shown))
    return findings


def _imported_modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return [node.module] if node.module and node.level == 0 else []


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for (`np` -> `numpy`, `load` -> `torch.load`)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_constant(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _unsafe_call(call: ast.Call, aliases: dict[str, str]) -> str:
    name = _dotted(call.func, aliases)
    last = name.rsplit(".", 1)[-1]
    if isinstance(call.func, ast.Name) and call.func.id in ("eval", "exec") and call.func.id not in aliases:
        return f"{call.func.id}() runs text as code"
    if name == "torch.load" and not _is_constant(_keyword(call, "weights_only"), True):
        return "torch.load without weights_only=True unpickles arbitrary objects; pass weights_only=True or use safetensors"
    if name == "numpy.load" and _keyword(call, "allow_pickle") is not None \
            and not _is_constant(_keyword(call, "allow_pickle"), False):
        return "np.load with allow_pickle (not False) can unpickle; keep the default allow_pickle=False"
    if name in ("yaml.load", "yaml.load_all"):
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if loader is None or _dotted(loader, aliases).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
            return f"{name} without a safe Loader can build arbitrary objects; use yaml.safe_load"
    if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
        return f"{name} can build arbitrary objects; use yaml.safe_load"
    if last in ("read_pickle", "to_pickle"):
        return f"{last}() stores data as a pickle; use Parquet"
    if name == "torch.jit.load":
        return "torch.jit.load runs the TorchScript code stored in the file; load only files shipped in an installed package"
    return ""
