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
