"""A real browser: JupyterLab with the course's setup, driven by headless Chromium (Playwright).

JupyterLab serves a temporary copy of the student notebooks (release/, start-here.ipynb and the
course's nbgrader_config.py), so the test never modifies release/. In lesson 1 it runs all
cells, finds the rendered widget, changes it and sees its output change, then presses nbgrader's
Validate and reads the result; then it runs the start-here notebook and finds the course map and
the progress chart. Screenshots go to build/screenshots/ for a person to look at.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import harness
import httpx
import nbformat
import pytest

ROOT = harness.ROOT
SHOTS = harness.BUILD / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LESSON = "01-interoperability"
TOKEN = "course-browser-test"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    base = tmp_path_factory.mktemp("lab")
    root = base / "course"
    root.mkdir()
    shutil.copytree(ROOT / "release", root / "release")
    for name in ("start-here.ipynb", "nbgrader_config.py", "README.md"):
        shutil.copy(ROOT / name, root / name)
    # in the reader's copy, lesson 0 is answered, so start-here shows some progress
    template = importlib.import_module("exercises.00_template")
    lesson0 = root / "release" / "00-template" / "00-template.ipynb"
    nbformat.write(
        harness.with_cells_replaced(
            nbformat.read(lesson0, as_version=4),
            harness.exercise_format().alternatives(template)[0],
        ),
        lesson0,
    )
    # every cell rendered (no virtual scrolling), and no news pop-up over the notebook
    settings = base / "settings"
    for plugin, value in {
        "notebook-extension/tracker": '{"windowingMode": "none"}',
        "apputils-extension/notification": '{"fetchNews": "false"}',
    }.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    port = _free_port()
    home = base / "home"
    home.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        COURSE_CACHE_DIR=str(base / "cache"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        PYTHONWARNINGS="ignore",
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    log = open(base / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={TOKEN}",
            f"--LabApp.workspaces_dir={base / 'workspaces'}",
            f"--LabApp.user_settings_dir={settings}",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its kernels share the process group: stopped together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/status?token={TOKEN}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"JupyterLab did not start:\n{(base / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield {"url": url, "root": root, "log": base / "server.log"}
    finally:
        with _suppress():
            httpx.post(f"{url}/api/shutdown?token={TOKEN}", timeout=5)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        with _suppress():
            os.killpg(server.pid, signal.SIGKILL)  # anything left of the server or its kernels
        server.wait(timeout=10)
        log.close()


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], Exception)


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        # leaving a notebook with unsaved cells asks "leave the page?": say yes
        page.on("dialog", lambda dialog: dialog.accept())
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _open(page, url: str, path: str) -> None:
    page.goto(f"{url}/lab/tree/{path}?token={TOKEN}")
    page.locator(".jp-NotebookPanel:visible .jp-Notebook").wait_for()
    _wait_idle(page, 90)


def _kernel_busy(page) -> bool:
    return page.evaluate(
        """() => {
        const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
            .find(p => !p.classList.contains('lm-mod-hidden'));
        if (!panel) return true;
        const prompts = [...panel.querySelectorAll('.jp-InputPrompt')].map(e => e.textContent);
        const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
        const status = indicator ? indicator.getAttribute('data-status') : 'idle';
        return prompts.some(t => t.includes('*')) || (status && status !== 'idle');
    }"""
    )


def _wait_idle(page, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    quiet_since = None
    while time.monotonic() < deadline:
        if _kernel_busy(page):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2:
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the notebook was still running after {seconds:.0f} s")


def _run_all(page, seconds: float) -> None:
    """Run > Run All Cells, then wait until the run has finished: nothing queued or running,
    and either the last code cell has run or a cell failed (a run stops at its first error)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
    try:
        _wait_for_run(page, seconds)
    except Exception:
        page.screenshot(path=str(SHOTS / "failed-run-all.png"))
        raise
    _wait_idle(page, 30)


def _wait_for_run(page, seconds: float) -> None:
    page.wait_for_function(
        """() => {
        const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
            .find(p => !p.classList.contains('lm-mod-hidden'));
        if (!panel) return false;
        const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .map(e => e.textContent.trim());
        if (!prompts.length || prompts.some(t => t.includes('*'))) return false;
        const failed = panel.querySelector(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']");
        return Boolean(failed) || /\\[\\d+\\]/.test(prompts[prompts.length - 1]);
    }""",
        timeout=seconds * 1000,
        polling=500,
    )


def _visible(page, selector: str):
    return page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {selector}")


def test_lesson_widget_and_validate(page, lab):
    _open(page, lab["url"], f"release/{LESSON}/{LESSON}.ipynb")
    page.screenshot(path=str(SHOTS / "01-lesson-opened.png"))
    _run_all(page, 150)

    # the run stops at the first exercise (its stub raises), after the widget's cell
    errors = _visible(
        page, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    assert errors.count() >= 1, "Run All should stop at the first unanswered exercise"
    stopped_at = errors.last.text_content()
    assert "NotImplementedError" in stopped_at, f"the run stopped at another error:\n{stopped_at}"

    dropdown = _visible(page, ".widget-dropdown select").first
    dropdown.scroll_into_view_if_needed()
    view = _visible(page, ".widget-html-content").first
    page.wait_for_function(
        "el => el.textContent.trim().length > 0", arg=view.element_handle(), timeout=30_000
    )
    before = view.inner_text()
    page.screenshot(path=str(SHOTS / "02-lesson-widget-before.png"))
    options = dropdown.locator("option").all_inner_texts()
    current = dropdown.input_value()
    other = next(o for o in options if o != current)
    dropdown.select_option(label=other)
    page.wait_for_function(
        "([el, old]) => el.textContent !== old", arg=[view.element_handle(), before], timeout=30_000
    )
    after = view.inner_text()
    assert after != before, f"the widget's output should change from {before!r}"
    dropdown.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "03-lesson-widget-after.png"))

    page.get_by_role("button", name="Validate").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=150_000)
    page.wait_for_function(
        "() => !/Validating/i.test(document.querySelector('.jp-Dialog')?.textContent || '')",
        timeout=150_000,
    )
    result = dialog.inner_text()
    page.screenshot(path=str(SHOTS / "04-lesson-validate.png"))
    assert "Validation Results" in result or "failed" in result.lower(), result[:2000]
    assert "NotImplementedError" in result, (
        f"Validate should name the unanswered exercise:\n{result[:2000]}"
    )
    dialog.get_by_role("button").last.click()
    dialog.wait_for(state="detached")

    # a self-learner's check: a new cell at the end, `course.check()` finds its own notebook
    _visible(page, ".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type("import course\ncourse.check()")
    page.keyboard.press("Shift+Enter")
    report = _visible(page, ".jp-OutputArea-output:has-text('exercises pass their visible tests')")
    report.last.wait_for(timeout=120_000)
    text = report.last.inner_text()
    report.last.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "05-lesson-course-check.png"))
    assert f"{LESSON}.ipynb: 0 of 3 exercises pass" in text, text[:1000]
    assert "not started" in text, text[:1000]
    page.keyboard.press("Control+s")  # keep the reader's new cell


def test_start_here_shows_map_and_progress(page, lab):
    _open(page, lab["url"], "start-here.ipynb")
    _run_all(page, 150)
    links = _visible(page, ".jp-OutputArea-output a[href*='release/']")
    lessons = sorted(p.parent.name for p in (lab["root"] / "release").glob("*/*.ipynb"))
    assert links.count() >= len(lessons), f"the course map should link {lessons}"
    progress_table = _visible(
        page, ".jp-OutputArea-output:has-text('exercises pass their visible tests')"
    ).first
    progress_table.scroll_into_view_if_needed()
    assert "done" in progress_table.inner_text(), progress_table.inner_text()[:1000]
    chart = _visible(page, ".jp-OutputArea-output img").first
    chart.scroll_into_view_if_needed()
    assert chart.evaluate("img => img.naturalWidth") > 300, "the progress chart should be drawn"
    page.screenshot(path=str(SHOTS / "06-start-here-progress.png"))
    _visible(page, ".jp-OutputArea-output a[href*='release/']").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "07-start-here-map.png"))
    errors = _visible(
        page, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    assert errors.count() == 0, errors.all_inner_texts()
