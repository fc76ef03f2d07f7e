"""`import course`: light, lazy submodules, and course.check() reaching the self-check."""

import subprocess
import sys

import pytest

import course


def test_import_course_is_light():
    code = "import sys, course; print(sorted(m for m in ('torch', 'tensorflow', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", (
        f"import course should load no framework, loaded {out.stdout.strip()}"
    )


def test_submodules_load_on_first_use():
    assert course.verify.__name__ == "course.verify"
    assert "convert" in dir(course) and "serve" in dir(course)


def test_unknown_attribute_names_the_problem():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        course.nope  # noqa: B018
    with pytest.raises(AttributeError):
        course._private  # noqa: B018


def test_check_delegates_to_selfcheck(tmp_path):
    with pytest.raises(Exception) as info:
        course.check(tmp_path / "missing.ipynb")
    assert "missing.ipynb" in str(info.value)


# --------------------------------------------------------------------------------------------
# a plain `pip install` of the built wheel: every import `import course; course.check()` reaches
# is declared. A real install into a fresh venv took 3.5 min here (numpy, onnxruntime, pandas,
# jupyter from the index), too slow for the suite: the wheel is built for real and its metadata
# is checked against a scan of the imports.

CHECK_PATH = ("__init__.py", "selfcheck.py", "_capture.py", "_model.py")
CORE = ("verify.py", "inspect.py", "quantize.py", "bench.py", "data.py", "widgets.py")


def _imports(path, *, module_level_only: bool) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
def test_built_wheel_declares_what_course_check_imports(tmp_path):
    import importlib.metadata
    import zipfile
    from pathlib import Path

    root = Path(course.__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("onnx_and_beyond-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith("licenses/LICENSE") for n in names), f"expected LICENSE in {wheel.name}"
    assert "course/selfcheck.py" in names and "course/_model.py" in names, names
    required = {
        _norm(line.split(":", 1)[1].split(";")[0].strip().split(">")[0].split("=")[0].split("<")[0])
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    pkg = root / "course"
    needed = set()
    for name in CHECK_PATH:
        needed |= _imports(pkg / name, module_level_only=False)
    for name in CORE:
        needed |= _imports(pkg / name, module_level_only=True)
    dists = importlib.metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | {"course", "__future__"}
    missing = {}
    for module in sorted(needed - stdlib):
        owners = {_norm(d) for d in dists.get(module, [])}
        if not owners & required:
            missing[module] = sorted(owners)
    # IPython comes with ipykernel, which course.check() needs for its kernel
    missing.pop("IPython", None) if "ipykernel" in required else None
    assert not missing, (
        f"expected pyproject's dependencies to cover every import of import course / "
        f"course.check / the core modules, got undeclared {missing} (declared: {sorted(required)})"
    )
