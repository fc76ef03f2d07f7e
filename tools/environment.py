"""Generate environment.yml (what Binder and conda users get) from requirements.txt.

requirements.txt is the one place where dependencies are pinned. environment.yml carries the same
pins for pip inside a conda environment, plus the CPU wheel index for torch so that Binder's image
does not carry the CUDA build (about 2.5 GB more).

    python -m tools.environment > environment.yml      (or: make environment.yml)
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Installed by conda: the kernel's interpreter. Binder's base environment brings JupyterLab 4,
# Notebook 7 and ipywidgets 8; our pip pins of those stay inside the same major versions.
CONDA = ["python=3.11", "pip"]
# Test-only tools and the website's builder (make site): a Binder image does not need them.
DEV_ONLY = {"pytest", "pytest-cov", "pytest-timeout", "pytest-xdist", "playwright", "ruff"}
DEV_ONLY |= {"sphinx", "myst-nb", "sphinx-book-theme"}
# Wheels the real-model tests read ONNX files from (never imported); rapidocr alone brings
# opencv-python (a 79 MB wheel) that a learner's image has no use for. magika is not here:
# lesson 3 runs its model (a 16 MB wheel whose dependencies, click and onnxruntime, the course
# already has), and silero-vad's (lessons 2, 4 and 5) needs only torch.
DEV_ONLY |= {"rapidocr-onnxruntime"}


def pins(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """``{name: 'name[extras]==version'}`` for every requirement line."""
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)", line)
        if not m:
            raise ValueError(f"requirements.txt: {raw!r} is not an exact pin (name==version)")
        out[m.group(1).lower()] = line
    return out


def render() -> str:
    lines = [
        "# Generated from requirements.txt by `make environment.yml`: edit requirements.txt instead.",
        "name: onnx-and-beyond",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        *[f"  - {c}" for c in CONDA],
        "  - pip:",
        f"      - --extra-index-url {TORCH_CPU_INDEX}",
    ]
    for name, line in pins().items():
        if name in DEV_ONLY:
            continue
        if name == "torch":
            line = line + "+cpu"
        lines.append(f"      - {line}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
