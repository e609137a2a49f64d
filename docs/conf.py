"""Sphinx configuration of the automm_lite manual: ``python -m sphinx -W -b html docs docs/_build``.

Two pages are made from the code at each build, so they cannot drift from it: the hyperparameter keys (from the
config's own metadata) and the tutorials (the notebooks of ``tutorials/`` with their stored outputs; the tests run
them, the docs only show them).
"""
import os
import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import automm_lite  # noqa: E402

project = "automm_lite"
author = "The automm_lite authors"
copyright = "2026, the automm_lite authors"
release = version = automm_lite.__version__

extensions = [
    "myst_nb",                   # Markdown pages (myst-parser) and the notebooks with their stored outputs
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinxarg.ext",             # the command line page, from cli.build_parser
]
# .rst first: autosummary writes its generated pages with the first suffix, and they are reST
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "reference/_generated"]

myst_heading_anchors = 3         # [text](page.md#a-heading) links, checked at build
myst_enable_extensions = ["colon_fence"]
nb_execution_mode = "off"        # tests/test_tutorials.py executes them; the site shows what they stored
nb_merge_streams = True

autosummary_generate = True
autodoc_typehints = "none"       # the numpydoc sections say the types
autodoc_member_order = "bysource"  # fit, then predict, as the class reads
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Every public function and method of the documented API says what it takes and what it returns.
numpydoc_validation_checks = {"PR01", "PR02", "RT01", "YD01"}
numpydoc_validation_exclude = {r"\.__init__$", r"\.__getattr__$", r"\.__repr__$"}

html_theme = "pydata_sphinx_theme"
html_title = f"automm_lite {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = ["_static"]
html_css_files = ["tables.css"]
nitpicky = False


def _write_if_changed(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _generate(app) -> None:
    from automm_lite.config import keys_table

    # autosummary writes a page per documented object: start afresh, so a moved object leaves no stale page
    shutil.rmtree(DOCS / "reference" / "api", ignore_errors=True)

    _write_if_changed(DOCS / "reference" / "_generated" / "keys.md", keys_table() + "\n")
    notebooks = DOCS / "tutorials" / "_notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
        target = notebooks / notebook.name
        if not target.exists() or target.read_bytes() != notebook.read_bytes():
            shutil.copyfile(notebook, target)


def setup(app):
    app.connect("builder-inited", _generate, priority=100)  # before autosummary generates its pages
