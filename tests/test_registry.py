"""Plugin discovery: entry points, plugin files, blocking, duplicates, did-you-mean."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.contracts import ConfigError
from harness.registry import PluginError, Registry


def test_builtins_come_from_the_entry_point_group():
    registry = Registry()
    info = registry.get("generator", "oversample")
    assert info.origin.startswith("entry point fairgen-harness:oversample")
    assert "plugins.generators.oversample:" in info.origin


def test_plugin_file_is_loaded(toy_plugins):
    registry = Registry([toy_plugins])
    assert registry.get("classifier", "centroid").origin.startswith(f"file {toy_plugins}")


def test_block_by_plugin_name_and_by_entry_point(toy_plugins):
    registry = Registry([toy_plugins], blocked=["centroid", "oversample"])
    names = {p.name for p in registry.all()}
    assert "centroid" not in names and "oversample" not in names
    assert "noisy_copy" in names


def test_duplicate_names_are_an_error_naming_both_origins(tmp_path):
    clash = tmp_path / "clash.py"
    clash.write_text(textwrap.dedent("""
        from harness import Generator, hookimpl
        class Mine(Generator):
            name = "oversample"
        @hookimpl
        def harness_generators():
            return [Mine]
    """))
    with pytest.raises(PluginError) as err:
        Registry([clash])
    message = str(err.value)
    assert "entry point fairgen-harness:oversample" in message and str(clash) in message


def test_unknown_name_suggests_the_closest(toy_plugins):
    with pytest.raises(ConfigError, match="Did you mean 'oversample'"):
        Registry([toy_plugins]).get("generator", "oversampel")


def test_hook_must_return_plugin_classes(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from harness import hookimpl\n@hookimpl\ndef harness_generators():\n    return [object]\n")
    with pytest.raises(PluginError, match="Generator subclasses"):
        Registry([bad])


def test_unknown_parameter_is_refused_with_a_hint(toy_plugins):
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        Registry([toy_plugins]).create("classifier", "centroid", {"temperatur": 3.0})


def test_wrong_parameter_type_is_refused(toy_plugins):
    with pytest.raises(ConfigError, match="expects float"):
        Registry([toy_plugins]).create("classifier", "centroid", {"temperature": "hot"})


def test_third_party_package_with_an_entry_point_shows_in_ls(tmp_path):
    """An installed distribution (a dist-info on sys.path) registers through the entry point."""
    package = tmp_path / "thirdparty_gen"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        from harness import Generator, hookimpl
        class ThirdParty(Generator):
            name = "thirdparty"
            version = "2.5"
            produces_images = False
        @hookimpl
        def harness_generators():
            return [ThirdParty]
    """))
    dist = tmp_path / "thirdparty_gen-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-gen\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[harness]\nthirdparty = thirdparty_gen\n")
    harness_cli = Path(sys.executable).parent / "harness"
    result = subprocess.run([str(harness_cli), "ls"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if "thirdparty" in l)
    assert "2.5" in line and "entry point thirdparty-gen:thirdparty" in line
