"""Sphinx configuration of the refnet site; build it with ``python -m refnet docs --out DIR``.

Pages: index.md, design.md, api.md and every tutorial ``[0-9][0-9]_*.py`` (jupytext
py:percent, executed at build time by myst-nb). Nothing is loaded from outside the site.
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))            # document (and run the tutorials against) this checkout

import refnet                            # noqa: E402
import refnet.docs                       # noqa: E402

project = "refnet"
release = version = refnet.__version__
copyright = "the refnet authors, MIT license"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
include_patterns = ["index.md", "design.md", "api.md", "[0-9][0-9]_*.py"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".py": "myst-nb"}

# myst-nb reads the tutorials as jupytext py:percent notebooks and executes them.
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_in_temp = True              # kernels run in a temporary folder: nothing is written into the sources
nb_execution_raise_on_error = True       # a failing tutorial fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_ipywidgets_js = {}                    # default: require.js and the widget manager from a CDN
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# MathJax 3 from the site itself (refnet.docs installs the npm package mathjax@3 once).
html_static_path = [str(refnet.docs.mathjax_static())]
mathjax_path = "mathjax/tex-chtml.js"
# An undefined macro is an error (mjx-merror, which the browser test looks for), not red text.
mathjax3_config = {"tex": {"tags": "ams", "packages": {"[-]": ["noundefined"]}}}

highlight_language = "none"             # docstrings' :: blocks hold formulas, not Python (>>> still highlights)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = True

html_theme = "furo"
html_title = f"refnet {version}"
html_show_sourcelink = False
html_copy_source = False
