"""The course website (tools/site.py, `make site`): the student version of every lesson, executed.

The unit tests check the pieces on the real lessons: solutions and hidden tests never reach a
page, widgets become static copies of their state, the launch links are README's, a stored run is
reused only while it matches what it ran. The browser test builds the site (reusing the executed
notebooks that the lessons' graded runs keep, tests/harness.py `graded`, so `make test` runs it
after the main suite), serves
build/site/ on 127.0.0.1 and opens every page in headless Chromium: no console error, no request
leaving the machine, a figure on every lesson page, the launch link and the download right, the
search working. Screenshots go to build/screenshots/site-*.png.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import harness
import httpx
import ipywidgets
import nbformat
import pytest
import yaml
from ipywidgets.embed import embed_data

from tools import site

ROOT = harness.ROOT
SHOTS = harness.BUILD / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SECRETS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


# --------------------------------------------------------------------------- the pieces


def test_every_lesson_and_start_here_have_readmes_launch_link():
    links = site.binder_links()
    readme = (ROOT / "README.md").read_text()
    wanted = ["start-here.ipynb"] + [
        site.release_notebook(lesson).relative_to(ROOT).as_posix() for lesson in site.lessons()
    ]
    missing = [path for path in wanted if path not in links]
    assert not missing, f"no README launch link for {missing} (found {sorted(links)})"
    assert all(url in readme for url in links.values())
    assert site.repository_url() == "https://github.com/onnx-and-beyond/onnx-and-beyond"


@pytest.mark.parametrize("lesson", site.lessons())
def test_student_version_has_no_solution_and_no_hidden_test(lesson):
    source = nbformat.read(site.source_notebook(lesson), as_version=4)
    release = nbformat.read(site.release_notebook(lesson), as_version=4)
    # outputs as a run would leave them, the solution's included
    for cell in source.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="ran\n")]
    page = site.student_version(source, release, lesson)
    answers = checks = 0
    for cell, shipped in zip(page.cells, release.cells, strict=True):
        marks = cell.metadata.get("nbgrader", {})
        leaked = [s for s in SECRETS if s in cell.source]
        assert not leaked, f"{lesson}: a page cell still holds {leaked}:\n{cell.source[:300]}"
        if marks.get("solution") or marks.get("grade"):
            assert cell.source == shipped.source, f"{lesson}: an exercise cell is not the release's"
            assert not cell.get("outputs"), f"{lesson}: exercise cell {marks} kept its outputs"
            answers += "exercise-answer" in cell.metadata["tags"]
            checks += "exercise-check" in cell.metadata["tags"]
        elif cell.cell_type == "code":
            assert cell.outputs, f"{lesson}: a lesson cell lost its outputs"
    assert answers >= 1 and checks >= 1, f"{lesson}: {answers} answer and {checks} check cells"


def test_student_version_refuses_a_stale_release():
    lesson = site.lessons()[0]
    source = nbformat.read(site.source_notebook(lesson), as_version=4)
    release = nbformat.read(site.release_notebook(lesson), as_version=4)
    plain = next(i for i, c in enumerate(source.cells) if not c.metadata.get("nbgrader"))
    source.cells[plain].source += "\n# changed after the release"
    with pytest.raises(site.SiteError, match="make release"):
        site.student_version(source, release, lesson)
    with pytest.raises(site.SiteError, match="make release"):
        site.student_version(source, nbformat.v4.new_notebook(cells=release.cells[:-1]), lesson)


def _notebook_showing(widget: ipywidgets.Widget) -> nbformat.NotebookNode:
    """A notebook whose one output is ``widget``, with the state a kernel would have saved."""
    data = embed_data(views=[widget])
    nb = nbformat.v4.new_notebook()
    nb.metadata.widgets = {site.WIDGET_STATE: data["manager_state"]}
    cell = nbformat.v4.new_code_cell("widget")
    cell.outputs = [
        nbformat.v4.new_output(
            "execute_result",
            data={site.WIDGET_VIEW: data["view_specs"][0], "text/plain": "VBox(...)"},
            execution_count=1,
        )
    ]
    nb.cells = [cell]
    return nb


def test_widgets_become_static_copies_of_their_state():
    box = ipywidgets.VBox(
        [
            ipywidgets.HBox(
                [
                    ipywidgets.Dropdown(options=["MLP", "CNN"], value="CNN", description="model"),
                    ipywidgets.IntSlider(value=7, min=1, max=64, description="batch"),
                    ipywidgets.SelectionSlider(options=[10, 100, 300], value=300),
                ]
            ),
            ipywidgets.HTML("<b>measured 1.5 ms</b>"),
        ]
    )
    nb = _notebook_showing(box)
    assert site.static_widgets(nb) == 1
    assert "widgets" not in nb.metadata, "the saved state would load the widget manager"
    data = nb.cells[0].outputs[0]["data"]
    assert site.WIDGET_VIEW not in data
    shown = data["text/html"]
    for expected in ("<b>measured 1.5 ms</b>", "<option selected>CNN</option>", "value='7'",
                     "<b>300</b>", "static-widget-row", "Binder"):  # fmt: skip
        assert expected in shown, f"expected {expected!r} in the static widget, got:\n{shown}"


def test_a_stored_run_is_reused_only_while_it_matches(tmp_path, monkeypatch):
    monkeypatch.setattr(site, "EXECUTED", tmp_path)
    lesson = site.lessons()[0]
    nb = nbformat.read(site.source_notebook(lesson), as_version=4)
    assert site.reusable_executed(lesson) is None
    site.keep_executed(lesson, nb, site.fingerprint(lesson))
    assert site.reusable_executed(lesson) is not None
    site.keep_executed(lesson, nb, {**site.fingerprint(lesson), "source_sha256": "0" * 64})
    assert site.reusable_executed(lesson) is None, "a run of another source was reused"


def test_pages_workflow_builds_and_deploys_the_site():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    build = workflow["jobs"]["build"]["steps"]
    runs = " ".join(step.get("run", "") for step in build)
    assert "make site" in runs, f"the workflow should build with `make site`, runs: {runs!r}"
    upload = [s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload and upload[0]["with"]["path"] == "build/site", f"uploads {upload}"
    deploy = workflow["jobs"]["deploy"]["steps"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy)
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}


# --------------------------------------------------------------------------- the built site


@pytest.fixture(scope="module")
def built_site():
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tools.site", "build"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, f"make site failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    print(f"\n{proc.stdout.strip()} (wall {time.monotonic() - t0:.0f} s)")
    return site.SITE


@pytest.fixture(scope="module")
def served(built_site):
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(built_site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser_page(served):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
        page.on(
            "request",
            lambda r: (
                urlparse(r.url).hostname not in ("127.0.0.1", None)
                and not r.url.startswith("data:")
                and problems.append(f"left the machine: {r.url}")
            ),
        )
        try:
            yield page, served, problems
        finally:
            context.close()
            browser.close()


def _visit(page, url: str, problems: list[str]) -> None:
    problems.clear()
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # the theme's scripts run after load


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_lesson_page_in_a_browser(browser_page):
    page, url, problems = browser_page
    links = site.binder_links()
    failures = []
    for lesson in site.lessons():
        _visit(page, f"{url}/{lesson}.html", problems)
        page.screenshot(path=str(SHOTS / f"site-{lesson}.png"))
        if problems:
            failures.append(f"{lesson}: {problems[:5]}")
        figures = page.locator("article .cell_output img, article .cell_output svg")
        if figures.count() == 0:
            failures.append(f"{lesson}: no figure (img or svg) in the page's outputs")
        else:
            figures.first.scroll_into_view_if_needed()
            loaded = figures.first.evaluate("e => e.tagName != 'IMG' || e.naturalWidth > 0")
            if not loaded:
                failures.append(f"{lesson}: its first figure did not load")
            page.screenshot(path=str(SHOTS / f"site-{lesson}-figure.png"))
        launch = page.locator("a.course-binder").get_attribute("href") or ""
        notebook = site.release_notebook(lesson).relative_to(ROOT).as_posix()
        urlpath = unquote(parse_qs(urlparse(launch).query).get("urlpath", [""])[0])
        if urlpath != f"lab/tree/{notebook}" or launch != links[notebook]:
            failures.append(
                f"{lesson}: launch link {launch!r}, expected README's {links[notebook]}"
            )
        download = page.locator("a.course-download").get_attribute("href") or ""
        got = httpx.get(f"{url}/{download}", timeout=10)
        want = json.loads(site.release_notebook(lesson).read_text())
        if got.status_code != 200 or got.json() != want:
            failures.append(f"{lesson}: download {download!r} is not the student notebook")
        text = page.locator("article").inner_text()
        leaked = [s for s in SECRETS if s in text]
        if leaked or "YOUR CODE HERE" not in text:
            failures.append(f"{lesson}: solutions shown ({leaked}) or no stub to fill in")
    assert not failures, "\n".join(failures)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_start_page_navigation_and_search(browser_page):
    page, url, problems = browser_page
    _visit(page, f"{url}/index.html", problems)
    page.screenshot(path=str(SHOTS / "site-index.png"))
    assert not problems, f"start page: {problems}"
    nav = page.locator("nav.bd-docs-nav a.reference.internal")
    hrefs = [Path(h).stem for h in nav.evaluate_all("els => els.map(e => e.getAttribute('href'))")]
    lessons = site.lessons()
    assert [h for h in hrefs if h in lessons] == lessons, (
        f"navigation {hrefs}, course map {lessons}"
    )
    mapped = page.locator("article table a").evaluate_all("els => els.map(e => e.href)")
    assert [Path(urlparse(h).path).stem for h in mapped] == lessons, (
        f"the course map should link every lesson's page in order, got {mapped}"
    )
    _visit(page, f"{url}/search.html?q=onnxruntime", problems)
    results = page.locator("#search-results li")
    results.first.wait_for()
    page.screenshot(path=str(SHOTS / "site-search.png"))
    assert results.count() >= 3, f"searching 'onnxruntime' found {results.count()} pages"
    assert not problems, f"search page: {problems}"
