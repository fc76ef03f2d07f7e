"""Sphinx configuration of the course website (built by ``make site``, see tools/site.py).

The pages are generated into build/site-src/ by tools/site.py, already executed: Sphinx (with
MyST-NB and the sphinx-book-theme) only renders them. Nothing here loads a file from the
internet: the site works offline and on any static host (GitHub Pages).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.site import repository_url  # noqa: E402

project = "ONNX and Beyond"
author = "the ONNX and Beyond authors"
copyright = "the ONNX and Beyond authors"  # noqa: A001
root_doc = "index"

extensions = ["myst_nb", "sphinx.ext.githubpages"]
myst_enable_extensions = ["colon_fence"]
nb_execution_mode = "off"  # tools/site.py executed every page
nb_merge_streams = True
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "ONNX and Beyond"
html_static_path = [str(Path(__file__).parent / "_static")]
html_css_files = ["course.css"]
html_favicon = str(Path(__file__).parent / "_static" / "favicon.svg")
# light by default: the figures are drawn on white (and an empty stored mode logs an error)
html_context = {"default_mode": "light"}
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "repository_url": repository_url(),
    "repository_branch": "main",
    "use_repository_button": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
