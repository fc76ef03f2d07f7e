"""The foundation's promises: one pinned dependency set, clean source notebooks, a true README."""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata

from harness import ROOT

sys.path.insert(0, str(ROOT))
from tools import environment, notebooks  # noqa: E402


def test_environment_yml_matches_requirements():
    want = environment.render()
    got = (ROOT / "environment.yml").read_text()
    assert got == want, (
        "environment.yml disagrees with requirements.txt: run `make environment.yml`"
    )


def test_installed_versions_are_the_pins():
    wrong = {}
    for name, line in environment.pins().items():
        version = line.split("==")[1]
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = (version, "not installed")
            continue
        if installed.split("+")[0] != version:
            wrong[name] = (version, installed)
    assert not wrong, (
        f"installed versions differ from requirements.txt (pinned, installed): {wrong}"
    )


def test_binder_installs_cpu_torch():
    text = (ROOT / "environment.yml").read_text()
    assert "torch==2.13.0+cpu" in text and "download.pytorch.org/whl/cpu" in text


def test_source_notebooks_have_no_outputs():
    dirty = []
    for path in (ROOT / "source").rglob("*.ipynb"):
        nb = json.loads(path.read_text())
        if any(
            c.get("outputs") or c.get("execution_count")
            for c in nb["cells"]
            if c["cell_type"] == "code"
        ):
            dirty.append(str(path.relative_to(ROOT)))
    assert not dirty, f"source notebooks must be stored without outputs: {dirty}"


def test_source_notebooks_are_built_from_lessons():
    scripts = notebooks.scripts()
    built = {notebooks.target_for(s) for s in scripts}
    orphans = [p for p in (ROOT / "source").glob("*/*.ipynb") if p not in built]
    assert not orphans, f"source notebooks without a lessons/ script: {orphans}"
    for script in scripts:
        target = notebooks.target_for(script)
        assert target.exists(), f"{target} missing: run `make notebooks`"
        assert target.read_text() == notebooks.render(notebooks.build_notebook(script)), (
            f"{target.relative_to(ROOT)} is out of date with {script.relative_to(ROOT)}: run `make notebooks`"
        )


def test_notebook_builder_rejects_bad_markup(tmp_path):
    import pytest

    bad = tmp_path / "99-bad.py"
    bad.write_text('# %% nbgrader={"grade": true, "grade_id": "ex1-test"}\nassert True\n')
    with pytest.raises(ValueError, match="needs points"):
        notebooks.build_notebook(bad)
    bad.write_text('# %% nbgrader={"solution": true}\nx = 1\n')
    with pytest.raises(ValueError, match="grade_id"):
        notebooks.build_notebook(bad)


def test_readme_quick_start_is_two_make_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README.md has no quick start code block"
    commands = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands == ["make course", "make test"], (
        f"quick start should be the two commands, got {commands}"
    )
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^course: ", makefile, re.M) and re.search(r"^test: ", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(), (
        ".ci/run must call the README's test command"
    )


def test_readme_names_only_tools_that_exist():
    """Every ``course.module.function`` and ``python -m package`` the README shows is real."""
    import importlib.util

    readme = (ROOT / "README.md").read_text()
    missing = []
    for module, name in set(re.findall(r"\bcourse\.([a-z_]+)\.([a-z_]+)\(", readme)):
        if not hasattr(importlib.import_module(f"course.{module}"), name):
            missing.append(f"course.{module}.{name}")
    modules = set(re.findall(r"python -m ([a-z_][a-z_.]*)", readme))
    assert {"course.serve", "autograder", "benchmarks.serve_bench"} <= modules, modules
    for module in modules:
        if importlib.util.find_spec(module) is None:
            missing.append(f"python -m {module}")
    assert not missing, f"README.md names what does not exist: {missing}"


def test_nbgrader_config_is_relative_to_the_repository():
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert cfg.CourseDirectory.root == str(ROOT), (
        f"course root should be {ROOT}, got {cfg.CourseDirectory.root}"
    )
    assert cfg.CourseDirectory.course_id == "onnx-and-beyond"
    assert cfg.ExecutePreprocessor.kernel_name == "onnx-and-beyond"
