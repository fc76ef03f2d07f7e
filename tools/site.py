"""Build the course website: every lesson executed, as the student sees it, into ``build/site/``.

A page per lesson holds the student version of the notebook (the release's stubs in place of the
solutions, no hidden tests; the visible tests shown as the exercise's checks) with the outputs of
a top-to-bottom run of the instructor's notebook: every figure and table the lesson computes.
Widgets, which need a kernel, are shown as the lesson left them, with a note on how to make them
live. Each page has a launch link to Binder (read from README.md, the one place the links are
written) and a download of the student notebook; the navigation follows the course map and
Sphinx's search index works offline.

The executed notebooks are reused: the test suite's one graded run of each lesson's solutions
(``tests/harness.py``, ``graded``) keeps the executed notebook in ``build/executed/LESSON.ipynb``
with a fingerprint of what it ran (the source notebook and the ``course`` package); the build
takes the ones whose fingerprint matches and executes the others itself (nbclient, the course
kernel, the course artefacts of ``make artefacts`` and no trained model, no network where
bubblewrap is installed), so it builds from nothing on a fresh clone.

    python -m tools.site build            # build/site/ (make site)
    python -m tools.site execute LESSON   # run one source notebook into build/executed/

Rendering is Sphinx with MyST-NB and the sphinx-book-theme (Jupyter Book 1's stack): Jupyter
Book 2 (mystmd) downloads its page theme from the internet at build time, which neither the
course machines nor CI can reach.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source"
RELEASE = ROOT / "release"
BUILD = ROOT / "build"
EXECUTED = BUILD / "executed"
PAGES = BUILD / "site-src"  # the generated Sphinx sources (notebooks and the index)
DOCTREES = BUILD / "site-doctrees"
SITE = BUILD / "site"
CONF = ROOT / "site"  # conf.py and the static files, checked in
KERNEL = "onnx-and-beyond"
FINGERPRINT_KEY = "course_site"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what JupyterLab shows
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BINDER_LINK = re.compile(r"https://mybinder\.org/v2/gh/[^\s)\]>\"']+")
PROGRESS_HEADING = "## Your progress"  # start-here's sections from here on check the reader's copy
LIVE_NOTE = (
    "A static copy of the widget as the lesson leaves it. It reacts to its controls where a "
    "kernel runs: launch the lesson on Binder (link at the top of the page) or run "
    "<code>make course</code> on your machine."
)


class SiteError(RuntimeError):
    """The site cannot be built from the repository as it is (a clear message says why)."""


# --------------------------------------------------------------------------- lessons and links


def lessons() -> list[str]:
    """Lesson ids with both a source and a released notebook, in course order.

    Example:
        >>> lessons()[:2]
        ['00-template', '01-interoperability']
    """
    return sorted(
        p.parent.name
        for p in SOURCE.glob("*/*.ipynb")
        if (RELEASE / p.parent.name / p.name).is_file()
    )


def source_notebook(lesson: str) -> Path:
    return SOURCE / lesson / f"{lesson}.ipynb"


def release_notebook(lesson: str) -> Path:
    return RELEASE / lesson / f"{lesson}.ipynb"


def binder_links(readme: Path = ROOT / "README.md") -> dict[str, str]:
    """``{path in the repository: Binder launch URL}`` for every launch link of README.md.

    README.md is the one place the links are written (tests/test_binder.py checks them), so the
    site links to exactly the same URLs.

    Example:
        >>> binder_links()["release/01-interoperability/01-interoperability.ipynb"][:24]
        'https://mybinder.org/v2/'
    """
    links = {}
    for url in BINDER_LINK.findall(readme.read_text()):
        urlpath = unquote(parse_qs(urlparse(url).query).get("urlpath", [""])[0])
        if urlpath.startswith("lab/tree/"):
            links[urlpath.removeprefix("lab/tree/")] = url
    return links


def repository_url(readme: Path = ROOT / "README.md") -> str:
    """The GitHub repository the Binder links launch, e.g. ``https://github.com/org/repo``.

    Example:
        >>> repository_url().startswith("https://github.com/")
        True
    """
    for url in BINDER_LINK.findall(readme.read_text()):
        parts = urlparse(url).path.split("/")  # ['', 'v2', 'gh', org, repo, branch]
        if len(parts) >= 5 and parts[2] == "gh":
            return f"https://github.com/{parts[3]}/{parts[4]}"
    raise SiteError(f"{readme} has no Binder link to take the repository from")


# --------------------------------------------------------------------------- executed notebooks


def _sha256(folder: Path) -> str:
    """One hash of the files under ``folder`` (names and contents), leaving out what running
    or importing leaves behind: hidden files and folders (checkpoints, caches), __pycache__."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if not path.is_file() or "__pycache__" in parts or any(p.startswith(".") for p in parts):
            continue
        digest.update("/".join(parts).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(lesson: str) -> dict[str, str]:
    """What an executed notebook of ``lesson`` came from: hashes of its source folder (the
    notebook, and any files beside it) and of the ``course`` package it imports.

    Example:
        >>> sorted(fingerprint("00-template"))
        ['course_sha256', 'source_sha256']
    """
    return {
        "source_sha256": _sha256(SOURCE / lesson),
        "course_sha256": _sha256(ROOT / "course"),
    }


def keep_executed(lesson: str, nb: nbformat.NotebookNode, stamp: dict[str, str]) -> Path:
    """Store the executed source notebook of ``lesson`` for the site, with ``stamp`` (the
    :func:`fingerprint` taken *before* it ran), written atomically."""
    nb = copy.deepcopy(nb)
    nb.metadata[FINGERPRINT_KEY] = stamp
    EXECUTED.mkdir(parents=True, exist_ok=True)
    target = EXECUTED / f"{lesson}.ipynb"
    partial = target.with_suffix(f".{os.getpid()}.partial")
    nbformat.write(nb, partial)
    partial.replace(target)
    return target


def reusable_executed(lesson: str) -> nbformat.NotebookNode | None:
    """The executed notebook of ``lesson`` in ``build/executed/`` if it matches the lesson and
    the package as they are now, else None."""
    path = EXECUTED / f"{lesson}.ipynb"
    if not path.is_file():
        return None
    nb = nbformat.read(path, as_version=4)
    return nb if nb.metadata.get(FINGERPRINT_KEY) == fingerprint(lesson) else None


def first_run_cache(dest: Path, source: Path) -> Path:
    """A course cache at ``dest`` as a student's first run after set-up finds it: the artefacts
    that ``python -m course.artefacts`` built into ``source`` (ONNX files hard-linked, other files
    copied) and no trained model (``model-*``, what ``course.data.clear_cache`` deletes).

    Example:
        >>> import tempfile
        >>> built = Path(tempfile.mkdtemp())
        >>> for name in ("encoder.onnx", "model-digits-1.pt"):
        ...     _ = (built / name).write_bytes(b"x")
        >>> sorted(p.name for p in first_run_cache(built / "run", built).iterdir())
        ['encoder.onnx']
    """

    def link(src: str, dst: str) -> None:
        # onnx refuses external data (``*.onnx.data``) with several hard links ("a potential
        # hardlink attack"): only the models themselves are linked, everything else is copied
        if src.endswith(".onnx"):
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copy2(src, dst)

    if not source.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return dest
    shutil.copytree(
        source,
        dest,
        ignore=lambda folder, names: [
            n
            for n in names
            if (Path(folder) == source and n.startswith("model-")) or Path(folder, n) == dest
        ],
        copy_function=link,
    )
    return dest


def execute(lesson: str, timeout: int = 300) -> nbformat.NotebookNode:
    """Run the source notebook of ``lesson`` top to bottom in a fresh course kernel, in a copy
    of its folder with a first run's model cache (the course artefacts, no trained model)."""
    from nbclient import NotebookClient

    from course.data import cache_dir

    source = source_notebook(lesson)
    built = cache_dir()  # where `make artefacts` left the artefacts
    with tempfile.TemporaryDirectory(prefix="course-site-") as tmp:
        work = Path(tmp) / lesson
        shutil.copytree(source.parent, work)
        os.environ.update(
            COURSE_CACHE_DIR=str(first_run_cache(Path(tmp) / "cache", built)),
            MPLBACKEND=INLINE_BACKEND,
            PYTHONWARNINGS="ignore",
        )
        nb = nbformat.read(work / source.name, as_version=4)
        NotebookClient(
            nb, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(work)}}
        ).execute()
    return nb


def _offline_prefix() -> list[str]:
    """bubblewrap without network, where it works here, else [] (the lessons need none)."""
    bwrap = shutil.which("bwrap")
    if bwrap and subprocess.run([bwrap, "--dev-bind", "/", "/", "--unshare-net", "true"],
                                capture_output=True).returncode == 0:  # fmt: skip
        return [bwrap, "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent", "--"]
    return []


def execute_missing(names: list[str], jobs: int = 2) -> dict[str, float]:
    """Execute, ``jobs`` at a time, each lesson of ``names`` whose stored run is missing or
    stale; returns ``{lesson: seconds}`` for those executed."""
    todo = [lesson for lesson in names if reusable_executed(lesson) is None]
    env = dict(
        os.environ,
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    prefix = _offline_prefix()

    def run(lesson: str) -> float:
        t0 = time.monotonic()
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "tools.site", "execute", lesson],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SiteError(
                f"{lesson}: executing the source notebook failed:\n{proc.stderr[-3000:]}"
            )
        return time.monotonic() - t0

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(todo, pool.map(run, todo), strict=True))


# --------------------------------------------------------------------------- the student version


def student_version(executed: nbformat.NotebookNode, release: nbformat.NotebookNode, lesson: str):
    """The executed notebook as the student gets it: every nbgrader cell (answers and tests)
    replaced by the release's cell, without outputs, tagged ``exercise-answer`` or
    ``exercise-check``; every other cell keeps the outputs of the run.

    Raises SiteError when the release was not regenerated after the lesson changed.
    """
    if len(executed.cells) != len(release.cells):
        raise SiteError(
            f"{lesson}: the executed notebook has {len(executed.cells)} cells, the release "
            f"{len(release.cells)}: run `make release`"
        )
    nb = copy.deepcopy(executed)
    for index, (cell, shipped) in enumerate(zip(nb.cells, release.cells, strict=True)):
        marks = cell.metadata.get("nbgrader", {})
        if cell.cell_type != shipped.cell_type:
            raise SiteError(f"{lesson}: cell {index} differs from the release: run `make release`")
        if marks.get("solution") or marks.get("grade"):
            cell.source = shipped.source
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
            tag = "exercise-answer" if marks.get("solution") else "exercise-check"
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), tag]
        elif cell.source != shipped.source:
            raise SiteError(
                f"{lesson}: cell {index} of the source differs from the release: run `make release`"
            )
    return nb


# --------------------------------------------------------------------------- widgets, statically


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _widget_html(model_id: str, state: dict[str, Any], seen: set[str] | None = None) -> str:
    """Static HTML for the widget ``model_id`` of a saved widget state, children included."""
    seen = set() if seen is None else seen
    model = state.get(model_id)
    if model is None or model_id in seen:
        return ""
    seen.add(model_id)
    name = model.get("model_name", "")
    s = model.get("state", {})
    label = (
        f"<span class='static-widget-label'>{_esc(s['description'])}</span> "
        if s.get("description")
        else ""
    )
    if name in ("VBoxModel", "BoxModel", "GridBoxModel", "HBoxModel", "AccordionModel", "TabModel"):
        children = "".join(
            _widget_html(str(c).removeprefix("IPY_MODEL_"), state, seen)
            for c in s.get("children", [])
        )
        kind = "row" if name == "HBoxModel" else "column"
        return f"<div class='static-widget-box static-widget-{kind}'>{children}</div>"
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div class='static-widget-html'>{label}{s.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<div>{_esc(s.get('value', ''))}</div>"
    labels = s.get("_options_labels")
    if labels is not None and name.endswith("SliderModel"):  # SelectionSlider
        index = s.get("index") or 0
        shown = labels[index] if isinstance(index, int) and index < len(labels) else ""
        return (
            f"<div class='static-widget-control'>{label}<input type='range' disabled "
            f"min='0' max='{len(labels) - 1}' value='{_esc(index)}'> <b>{_esc(shown)}</b></div>"
        )
    if name.endswith("SliderModel"):
        value = s.get("value")
        return (
            f"<div class='static-widget-control'>{label}<input type='range' disabled "
            f"min='{_esc(s.get('min', 0))}' max='{_esc(s.get('max', 100))}' "
            f"step='{_esc(s.get('step', 1))}' value='{_esc(value)}'> <b>{_esc(value)}</b></div>"
        )
    if labels is not None:  # Dropdown, Select, RadioButtons, ToggleButtons
        index = s.get("index")
        options = "".join(
            f"<option{' selected' if i == index else ''}>{_esc(text)}</option>"
            for i, text in enumerate(labels)
        )
        return (
            f"<div class='static-widget-control'>{label}<select disabled>{options}</select></div>"
        )
    if name in ("CheckboxModel", "ToggleButtonModel"):
        checked = " checked" if s.get("value") else ""
        return f"<div class='static-widget-control'>{label}<input type='checkbox' disabled{checked}></div>"
    if name.endswith("TextModel") or name.endswith("TextareaModel"):
        return (
            f"<div class='static-widget-control'>{label}"
            f"<input type='text' disabled value='{_esc(s.get('value', ''))}'></div>"
        )
    if name == "ButtonModel":
        return f"<div class='static-widget-control'><button disabled>{_esc(s.get('description', ''))}</button></div>"
    if name == "OutputModel":
        return "".join(_output_html(o) for o in s.get("outputs", []))
    return ""  # layouts, styles and widgets with nothing to show


def _output_html(output: dict[str, Any]) -> str:
    data = output.get("data", {})
    if "text/html" in data:
        return "".join(data["text/html"])
    if "image/png" in data:
        return (
            f"<img src='data:image/png;base64,{''.join(data['image/png']).strip()}' alt='figure'>"
        )
    text = "".join(output.get("text", "")) or "".join(data.get("text/plain", ""))
    return f"<pre>{_esc(text)}</pre>" if text else ""


def static_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace every widget view in ``nb``'s outputs by static HTML of its saved state, with a
    note saying how to make it live, and drop the saved state (it would make the page load the
    widget manager from a CDN). Returns how many widgets were replaced."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            body = _widget_html(view.get("model_id", ""), state) or (
                "<p><em>(an interactive widget)</em></p>"
            )
            output["data"] = {
                "text/html": (
                    f"<div class='static-widget'>{body}"
                    f"<p class='static-widget-note'>{LIVE_NOTE}</p></div>"
                ),
                "text/plain": "(an interactive widget: run the notebook to use it)",
            }
            count += 1
    return count


# --------------------------------------------------------------------------- pages


LESSON_NOTE = (
    "*Read here, run there*: this page shows every output of a full run of the lesson; the "
    "exercises are left for you (their answer cells show the stub you replace, their check cells "
    "the visible tests). Launch it on Binder to run, change and check it in your browser, or "
    "download the notebook and open it in the course environment (`make course`)."
)
START_NOTE = (
    "*Read here, run there*: every lesson of the course map is a page of this site with all its "
    "outputs (figures, tables, measurements) computed by a full run. To run the lessons and do "
    "their exercises, launch the course on Binder (nothing to install) or run `make course` on "
    "your machine."
)


def _launch_bar(binder: str, download: str | None, facts: str, note: str) -> nbformat.NotebookNode:
    download_link = (
        f'<a class="course-download" href="{html.escape(download)}" download>'
        "Download the student notebook</a>"
        if download
        else ""
    )
    return nbformat.v4.new_markdown_cell(
        f'<div class="course-launch">\n<a class="course-binder" href="{html.escape(binder)}">'
        f"Launch on Binder</a>\n{download_link}\n<span class='course-facts'>{html.escape(facts)}"
        f"</span>\n</div>\n\n{note}",
        metadata={"tags": ["course-launch"]},
    )


def lesson_page(lesson: str, executed: nbformat.NotebookNode, links: dict[str, str]):
    """The page notebook of ``lesson``: the student version, a launch bar under the title,
    widgets made static."""
    from course import progress

    release = nbformat.read(release_notebook(lesson), as_version=4)
    nb = student_version(executed, release, lesson)
    path = release_notebook(lesson).relative_to(ROOT).as_posix()
    if path not in links:
        raise SiteError(f"README.md has no Binder launch link for {path}")
    info = progress.lesson_info(release_notebook(lesson), lesson)
    points = sum(info.exercises.values())
    facts = f"{info.estimated or 'time not stated'}, {len(info.exercises)} exercises ({points:g} points)"
    bar = _launch_bar(links[path], f"notebooks/{lesson}.ipynb", facts, LESSON_NOTE)
    nb.cells.insert(1, bar)
    static_widgets(nb)
    nb.metadata.pop(FINGERPRINT_KEY, None)
    return nb


def start_page(names: list[str], links: dict[str, str]) -> nbformat.NotebookNode:
    """start-here.ipynb up to its progress sections, executed (the course map is computed),
    with the lessons' links pointing at their pages and the site's navigation."""
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "start-here.ipynb", as_version=4)
    cut = next(
        (i for i, c in enumerate(nb.cells) if c.source.startswith(PROGRESS_HEADING)),
        len(nb.cells),
    )
    nb.cells = nb.cells[:cut]
    NotebookClient(
        nb, timeout=120, kernel_name=KERNEL, resources={"metadata": {"path": str(ROOT)}}
    ).execute(stderr=subprocess.DEVNULL)  # the kernel's own log, not the notebook's
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            htm = output.get("data", {}).get("text/html")
            if htm:
                output["data"]["text/html"] = re.sub(
                    r"href='release/([^/']+)/[^']+\.ipynb'", r"href='\1.html'", "".join(htm)
                )
    if "start-here.ipynb" not in links:
        raise SiteError("README.md has no Binder launch link for start-here.ipynb")
    nb.cells.insert(1, _launch_bar(links["start-here.ipynb"], None, "the whole course", START_NOTE))
    nb.cells.append(
        nbformat.v4.new_markdown_cell(
            "## Your progress\n\nYour progress is computed from your own copy of the lessons: "
            "run this notebook on Binder (the link above) or on your machine "
            "(`make course`), where it checks every lesson you have started."
        )
    )
    warmup = [n for n in names if n.startswith("00-")]
    rest = [n for n in names if not n.startswith("00-")]
    for caption, group in (("Warm-up", warmup), ("Lessons", rest)):
        if group:
            entries = "\n".join(group)
            nb.cells.append(
                nbformat.v4.new_markdown_cell(
                    f"```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{entries}\n```"
                )
            )
    return nb


def build(jobs: int = 2) -> dict[str, Any]:
    """Build the site into ``build/site/`` from the repository; returns what it measured."""
    t0 = time.monotonic()
    names = lessons()
    if not names:
        raise SiteError("no lesson has both a source and a released notebook")
    links = binder_links()
    reused = [n for n in names if reusable_executed(n) is not None]
    executed_s = execute_missing(names, jobs=jobs)
    t_exec = time.monotonic()
    for folder in (PAGES, DOCTREES, SITE):
        shutil.rmtree(folder, ignore_errors=True)
    PAGES.mkdir(parents=True)
    for lesson in names:
        executed = reusable_executed(lesson)
        if executed is None:
            raise SiteError(f"{lesson}: no executed notebook after running it")
        nbformat.write(lesson_page(lesson, executed, links), PAGES / f"{lesson}.ipynb")
    nbformat.write(start_page(names, links), PAGES / "index.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", str(max(1, jobs)),
         "-c", str(CONF), "-d", str(DOCTREES), str(PAGES), str(SITE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SiteError(f"sphinx-build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    (SITE / "notebooks").mkdir(exist_ok=True)
    for lesson in names:
        shutil.copy2(release_notebook(lesson), SITE / "notebooks" / f"{lesson}.ipynb")
    size = sum(p.stat().st_size for p in SITE.rglob("*") if p.is_file())
    return {
        "lessons": names,
        "reused": reused,
        "executed": executed_s,
        "execute_s": t_exec - t0,
        "render_s": time.monotonic() - t_exec,
        "total_s": time.monotonic() - t0,
        "bytes": size,
        "warnings": proc.stderr.strip(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.site", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the site into build/site/")
    b.add_argument("--jobs", type=int, default=2, help="lessons executed at once (default 2)")
    e = sub.add_parser("execute", help="execute one source notebook into build/executed/")
    e.add_argument("lesson")
    args = parser.parse_args(argv)
    try:
        if args.command == "execute":
            stamp = fingerprint(args.lesson)
            keep_executed(args.lesson, execute(args.lesson), stamp)
            return 0
        result = build(jobs=args.jobs)
    except SiteError as err:
        print(f"site: {err}", file=sys.stderr)
        return 1
    if result["warnings"]:
        print(result["warnings"], file=sys.stderr)
    executed = ", ".join(f"{k} {v:.0f} s" for k, v in result["executed"].items()) or "none"
    print(
        f"site: {len(result['lessons'])} lessons into {SITE.relative_to(ROOT)}/ in "
        f"{result['total_s']:.0f} s ({len(result['reused'])} executed notebooks reused; "
        f"executed: {executed}; rendering {result['render_s']:.0f} s), "
        f"{result['bytes'] / 1e6:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
