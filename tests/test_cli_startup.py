"""A fast, honest command line: plugin names and metadata come from a manifest checked against
the real classes (so `harness ls` and `--help` import no plugin, torch or matplotlib), a misnamed
hook is an error instead of a silently missing plugin, and a built-in grid name is not hidden by
a folder of that name in the working directory."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest

from harness.cli import VERBS, build_parser
from harness.contracts import ConfigError
from harness.grid import load_grid
from harness.registry import MANIFEST_FILE, PluginError, Registry, build_manifest

ROOT = Path(__file__).parents[1]
HARNESS = str(Path(sys.executable).parent / "harness")
HEAVY = ("torch", "diffusers", "transformers", "peft", "timm", "matplotlib")


def _imported_after(argv: list[str]) -> set[str]:
    """Top-level modules (and plugin modules) a fresh interpreter has imported after `harness ARGV`."""
    code = ("import sys, contextlib, io\nfrom harness.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
            "print(' '.join(sorted(m for m in sys.modules if '.' not in m or m.startswith('plugins.'))))")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_the_builtin_plugin_manifest_matches_the_plugin_classes():
    committed = json.loads((ROOT / "plugins" / MANIFEST_FILE).read_text())
    assert committed["modules"] == build_manifest("plugins")["modules"], \
        f"plugins/{MANIFEST_FILE} is stale: run `python -m harness.registry plugins`"


def test_ls_and_help_import_no_plugin_module_nor_torch_or_matplotlib():
    listed = _imported_after(["ls"])
    assert not [m for m in listed if m.startswith("plugins.") and m.count(".") > 1]
    assert not set(HEAVY) & listed
    assert not {*HEAVY, "pandas", "scipy"} & _imported_after(["--help"])


def test_ls_lists_every_builtin_with_the_version_of_its_class():
    result = subprocess.run([HARNESS, "ls"], capture_output=True, text=True, check=True)
    for info in Registry().all():
        line = next(line for line in result.stdout.splitlines() if f" {info.name} " in f" {line} ")
        assert info.kind in line and str(info.cls.version) in line


def _install(tmp_path: Path, manifest_version: str | None) -> dict:
    """A third-party distribution whose plugin module records that it was imported; with a
    manifest declaring the given version (none when None). Returns the environment that sees it."""
    package = tmp_path / "lazy_gen"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "gen.py").write_text(textwrap.dedent("""
        from pathlib import Path
        Path(__file__).with_name("imported").write_text("yes")
        from harness import Generator, hookimpl
        class Lazy(Generator):
            name = "lazy"
            version = "3"
            produces_images = False
            defaults = {"steps": 5}
        @hookimpl
        def harness_generators():
            return [Lazy]
    """))
    if manifest_version is not None:
        entry = {"kind": "generator", "name": "lazy", "version": manifest_version, "class": "Lazy",
                 "defaults": {"steps": 5}, "configs": {}}
        (package / MANIFEST_FILE).write_text(json.dumps({"modules": {"lazy_gen.gen": [entry]}}))
    dist = tmp_path / "lazy_gen-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lazy-gen\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[harness]\nlazy = lazy_gen.gen\n")
    return {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}


def test_a_third_party_manifest_lists_without_import_and_the_class_loads_on_use(tmp_path):
    env = _install(tmp_path, "3")
    listed = subprocess.run([HARNESS, "ls", "--kind", "generator"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    assert any("lazy" in line and " 3 " in f" {line} " for line in listed.stdout.splitlines())
    assert not (tmp_path / "lazy_gen" / "imported").exists()
    used = subprocess.run([sys.executable, "-c", "from harness.registry import Registry\n"
                           "print(Registry().create('generator', 'lazy', {'steps': 7}).params)"],
                          capture_output=True, text=True, env=env)
    assert used.returncode == 0, used.stderr
    assert "'steps': 7" in used.stdout and (tmp_path / "lazy_gen" / "imported").exists()


def test_a_stale_manifest_is_refused_when_the_class_loads(tmp_path):
    env = _install(tmp_path, "2")  # the code says version 3
    used = subprocess.run([sys.executable, "-c", "from harness.registry import Registry\n"
                           "Registry().get('generator', 'lazy').cls"], capture_output=True, text=True, env=env)
    assert used.returncode != 0
    assert "stale for generator 'lazy' (version: listed '2', code '3')" in used.stderr
    assert "regenerate it with `python -m harness.registry lazy_gen`" in used.stderr


@pytest.mark.parametrize("marked", [True, False])
def test_a_misnamed_hook_is_reported_not_silently_ignored(tmp_path, marked):
    typo = tmp_path / "typo.py"
    typo.write_text(textwrap.dedent(f"""
        from harness import Classifier, hookimpl
        class Mine(Classifier):
            name = "mine"
        {'@hookimpl' if marked else ''}
        def harness_classifier():
            return [Mine]
    """))
    with pytest.raises(PluginError, match="'harness_classifier' \\(did you mean 'harness_classifiers'\\?\\)"):
        Registry([typo], entry_points=False)


def test_a_hook_with_arguments_the_spec_lacks_is_reported(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from harness import hookimpl\n@hookimpl\ndef harness_generators(device):\n    return []\n")
    with pytest.raises(PluginError, match="wrong.py.*device"):
        Registry([wrong], entry_points=False)


def test_a_builtin_grid_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").mkdir()
    assert load_grid("smoke").source == "builtin:smoke"
    (tmp_path / "smoke.toml").write_text((resources.files("harness") / "grids" / "smoke.toml").read_text())
    assert load_grid("smoke.toml").source == "smoke.toml"  # a path to a .toml file is that file
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConfigError, match="grid file not found: mine"):
        load_grid("mine")


def test_the_verb_list_says_what_each_verbs_own_parser_says():
    def helps(parser):
        return {a.dest: a.help for a in parser._subparsers._group_actions[0]._choices_actions}

    assert helps(build_parser()) == helps(build_parser("-")) == VERBS


def test_every_verb_module_is_listed():
    modules = {path.stem.replace("_", "-") for path in (ROOT / "harness" / "cli").glob("*.py")} - {"--init--"}
    assert modules == set(VERBS), "add the verb and its one-line help to harness.cli.VERBS"
