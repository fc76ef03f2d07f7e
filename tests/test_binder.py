"""Binder: the repository launches from environment.yml + postBuild, and every launch link works.

The configuration is read by repo2docker itself (``--no-build --debug`` prints the Dockerfile it
would build, with no Docker needed), from a throw-away virtualenv under /tmp that the test
installs once with pip. The links in README.md are checked against the
notebooks in this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import nbformat
import pytest
import yaml
from harness import ROOT

REPO2DOCKER = "jupyter-repo2docker==2026.4.0"
R2D_VENV = Path("/tmp") / f"onnx-and-beyond-{REPO2DOCKER.replace('==', '-')}"
BINDER_PREFIX = "https://mybinder.org/v2/gh/onnx-and-beyond/onnx-and-beyond/"
LINK = re.compile(r"https://mybinder\.org/v2/gh/[^\s)\]>\"']+")
DOCS = [ROOT / "README.md"]
KERNEL = "onnx-and-beyond"


def _repo2docker() -> Path:
    exe = R2D_VENV / "bin" / "jupyter-repo2docker"
    if exe.exists():
        return exe
    shutil.rmtree(R2D_VENV, ignore_errors=True)
    venv.create(R2D_VENV, with_pip=True)
    proc = subprocess.run(
        [str(R2D_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", REPO2DOCKER],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 or not exe.exists():
        shutil.rmtree(R2D_VENV, ignore_errors=True)
        message = f"could not pip install {REPO2DOCKER}: {proc.stderr[-800:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (offline?)")
    return exe


@pytest.fixture(scope="module")
def dockerfile(tmp_path_factory) -> str:
    """The Dockerfile repo2docker would build for a clean checkout of this repository."""
    checkout = tmp_path_factory.mktemp("binder") / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            dest = checkout / name.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    proc = subprocess.run(
        [
            str(_repo2docker()),
            "--no-build",
            "--no-run",
            "--debug",
            "--user-id",
            "1000",
            "--user-name",
            "jovyan",
            str(checkout),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"repo2docker rejected the repository:\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_repo2docker_picks_the_conda_environment(dockerfile):
    assert "Building conda environment for python=3.11" in dockerfile, dockerfile[:2000]
    assert re.search(
        r'env update -p \$\{NB_PYTHON_PREFIX\} --file "environment\.yml"', dockerfile
    ), "repo2docker should install environment.yml into the notebook environment"
    # the kernel runs in the same environment as the server (one Python 3.11 env)
    assert "ENV KERNEL_PYTHON_PREFIX=${NB_PYTHON_PREFIX}" in dockerfile
    assert "RUN ./postBuild" in dockerfile, "postBuild should run after the environment"
    assert "requirements.txt" not in dockerfile, (
        "with environment.yml present, repo2docker must not also install requirements.txt"
    )
    assert "./start" not in dockerfile, "no start script is needed"


def test_environment_yml_as_repo2docker_reads_it():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps, f"expected python=3.11 in environment.yml, got {deps}"
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    names = {re.split(r"[=<>\[]", p)[0].lower() for p in pip if not p.startswith("-")}
    needed = {"jupyterlab", "nbgrader", "ipywidgets", "ipykernel", "torch"}
    assert needed <= names, f"environment.yml lacks {sorted(needed - names)}"
    assert any("download.pytorch.org/whl/cpu" in p for p in pip), "CPU-only torch on Binder"


def test_postbuild_installs_the_package_and_the_course_kernel():
    mode = subprocess.run(
        ["git", "ls-files", "-s", "postBuild"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert mode and mode[0] == "100755", f"postBuild should be committed executable, got {mode}"
    text = (ROOT / "postBuild").read_text()
    assert text.startswith("#!/bin/bash") and "set -euo pipefail" in text
    syntax = subprocess.run(["bash", "-n", str(ROOT / "postBuild")], capture_output=True, text=True)
    assert syntax.returncode == 0, f"postBuild is not valid bash: {syntax.stderr}"
    assert "pip install --no-deps -e ." in text, "postBuild should install the course package"
    assert f"--name {KERNEL}" in text, f"postBuild should register the {KERNEL!r} kernel"


def test_every_student_notebook_names_the_course_kernel():
    notebooks = sorted((ROOT / "release").glob("*/*.ipynb")) + [ROOT / "start-here.ipynb"]
    wrong = {
        str(p.relative_to(ROOT)): nbformat.read(p, as_version=4)
        .metadata.get("kernelspec", {})
        .get("name")
        for p in notebooks
    }
    wrong = {k: v for k, v in wrong.items() if v != KERNEL}
    assert not wrong, f"notebooks should use the kernel postBuild registers ({KERNEL}), got {wrong}"


def _links() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        if doc.is_file():
            found += [(doc.name, url) for url in LINK.findall(doc.read_text())]
    return found


def _lab_path(url: str) -> str:
    parsed = urlparse(url)
    assert url.startswith(BINDER_PREFIX + "main"), f"{url}: expected a link to {BINDER_PREFIX}main"
    urlpath = unquote(parse_qs(parsed.query).get("urlpath", [""])[0])
    assert urlpath.startswith("lab/tree/"), f"{url}: expected urlpath=lab/tree/..., got {urlpath!r}"
    return urlpath.removeprefix("lab/tree/")


def _announced() -> list[str]:
    text = (ROOT / "nbgrader_config.py").read_text()
    return re.findall(r'^\s+"(\d\d-[a-z0-9-]+)",$', text, flags=re.M)


def test_every_binder_link_opens_a_notebook_that_exists():
    links = _links()
    assert links, "README.md should have Binder launch links"
    released = {p.parent.name for p in (ROOT / "release").glob("*/*.ipynb")}
    broken = []
    for doc, url in links:
        if "badge_logo" in url:
            continue
        path = _lab_path(url)
        target = ROOT / path
        if target.is_file() and target.suffix == ".ipynb":
            continue
        parts = Path(path).parts
        # a lesson announced in nbgrader_config.LESSONS but not released yet may be linked at
        # the path nbgrader will give it
        coming = (
            len(parts) == 3
            and parts[0] == "release"
            and parts[1] in _announced()
            and parts[1] not in released
            and parts[2] == f"{parts[1]}.ipynb"
        )
        if not coming:
            broken.append(f"{doc}: {url} -> {path}")
    assert not broken, "Binder links to notebooks that do not exist:\n" + "\n".join(broken)


def test_badge_opens_start_here_and_every_lesson_has_a_link():
    urls = [u for _, u in _links()]
    paths = {_lab_path(u) for u in urls if "badge_logo" not in u}
    assert "start-here.ipynb" in paths, "the launch badge should open start-here.ipynb"
    text = (ROOT / "README.md").read_text()
    assert "https://mybinder.org/badge_logo.svg" in text, "README.md needs the launch badge"
    missing = []
    for nb in sorted((ROOT / "release").glob("*/*.ipynb")):
        rel = nb.relative_to(ROOT).as_posix()
        if rel not in paths:
            missing.append(
                f"| ... | [launch]({BINDER_PREFIX}main?urlpath=lab/tree/{rel}) | `{rel}` |"
            )
    assert not missing, "lessons without a Binder link in README.md; add:\n" + "\n".join(missing)


def test_docs_say_what_binder_cannot_do():
    text = " ".join((ROOT / "README.md").read_text().split())
    for needed in (
        "no GPU",
        "1 to 2 GB of memory",
        "10 minutes without activity",
        "Download your notebooks",
    ):
        assert needed in text, f"README.md should tell self-learners: {needed!r}"


def test_link_checker_catches_a_broken_link(monkeypatch, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"[x]({BINDER_PREFIX}main?urlpath=lab/tree/release/01-nope/missing.ipynb)\n")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", [doc])
    with pytest.raises(AssertionError, match="missing.ipynb"):
        test_every_binder_link_opens_a_notebook_that_exists()
    doc.write_text(f"[x]({BINDER_PREFIX}dev?urlpath=lab/tree/start-here.ipynb)\n")
    with pytest.raises(AssertionError, match="expected a link to"):
        test_every_binder_link_opens_a_notebook_that_exists()
