"""Sphinx configuration of the refnet site; build it with ``python -m refnet docs --out DIR``.

Pages: every ``*.md`` here (index, notation card, design, API, and the reference pages such as
benchmarks, errors and the conformance matrix where they exist) and every tutorial
``[0-9][0-9]_*.py`` (jupytext py:percent, executed at build time by myst-nb). Nothing is
loaded from outside the site, and nothing is written into the checkout.

Besides the usual settings this file
- makes the tutorials' inline figures SVG (an IPython profile in a temporary folder that the
  executing kernels read; the tutorials themselves stay plain matplotlib);
- puts a line under each page's title linking the notation card, and on a tutorial the API
  reference and the tutorial's source as ``.py`` and ``.ipynb`` (written into the built site
  with jupytext at build time); each SVG figure links to itself, to open full size on a phone;
- gives index.md its per-tutorial reading times and its links to pages that may not exist
  yet (``myst_substitutions``), so a page still missing does not break the strict build.
"""
import atexit
import html
import math
import os
import pathlib
import re
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))            # document (and run the tutorials against) this checkout

import refnet                            # noqa: E402
import refnet.docs                       # noqa: E402

project = "refnet"
release = version = refnet.__version__
copyright = "the refnet authors, MIT license"

HERE = pathlib.Path(__file__).resolve().parent

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax",
              "sphinx_copybutton"]
include_patterns = ["*.md", "[0-9][0-9]_*.py"]
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
myst_enable_extensions = ["dollarmath", "amsmath", "substitution"]
myst_heading_anchors = 3

# MathJax 3 from the site itself (refnet.docs installs the npm package mathjax@3 once).
html_static_path = [str(refnet.docs.mathjax_static()), "_static"]
html_css_files = ["refnet.css"]                 # nothing clipped: wrapping code, scrolling math
mathjax_path = "mathjax/tex-chtml.js"
# An undefined macro is an error (mjx-merror, which the browser test looks for), not red text.
mathjax3_config = {"tex": {"tags": "ams", "packages": {"[-]": ["noundefined"]}}}

highlight_language = "none"             # docstrings' :: blocks hold formulas, not Python (>>> still highlights)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"   # no second, empty Parameters block beside numpy-style ones
napoleon_use_rtype = False                            # Returns stays one section (no separate "Return type")
napoleon_numpy_docstring = True
napoleon_google_docstring = True

html_theme = "furo"
html_title = f"refnet {version}"
html_show_sourcelink = False
html_copy_source = False

# Copy buttons on code blocks; doctest prompts (>>> and ...) are left out of what is copied.
copybutton_prompt_text = r">>> |\.\.\. "
copybutton_prompt_is_regexp = True

# ---------------------------------------------------------------- inline figures as SVG
# The kernels that execute the tutorials start from this process's environment; a private
# IPython profile (not the user's ~/.ipython) tells matplotlib-inline to emit SVG, which
# myst-nb prefers over PNG. Crisp at every zoom, and text stays text-sized on phones.
_IPYTHONDIR = pathlib.Path(tempfile.mkdtemp(prefix="refnet-ipython-"))
atexit.register(shutil.rmtree, _IPYTHONDIR, ignore_errors=True)
(_IPYTHONDIR / "profile_default").mkdir()
(_IPYTHONDIR / "profile_default" / "ipython_kernel_config.py").write_text(
    'c.InlineBackend.figure_formats = {"svg"}\n')
os.environ["IPYTHONDIR"] = str(_IPYTHONDIR)

# ---------------------------------------------------------------- index.md: reading times, links
TUTORIAL_GLOB = "[0-9][0-9]_*.py"
# Pages other parts of the project add; index.md links them through a substitution that is
# plain text while a page is missing (a link to a missing page would fail the strict build).
OPTIONAL_PAGES = {"page_04": "04_numerics_of_the_projection", "page_matrix": "conformance_matrix",
                  "page_benchmarks": "benchmarks", "page_errors": "errors"}


def _reading_minutes(path):
    """Minutes to read a tutorial: its prose at 200 words a minute, its code at 20 lines a minute."""
    import jupytext
    nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    lines = sum(len([ln for ln in c.source.splitlines() if ln.strip()])
                for c in nb.cells if c.cell_type == "code")
    return max(1, math.ceil(words / 200 + lines / 20))


def _substitutions():
    subs = {}
    for path in sorted(HERE.glob(TUTORIAL_GLOB)):
        subs[f"read_{path.name[:2]}"] = f"{_reading_minutes(path)} min"
    for key, name in OPTIONAL_PAGES.items():
        found = [p for p in HERE.glob(name + ".*") if p.suffix in (".md", ".py")]
        subs[key] = f"{{doc}}`{name}`" if found else f"*{name.replace('_', ' ')}* (not in this build)"
    for n in ("00", "01", "02", "03", "04"):
        subs.setdefault(f"read_{n}", "-")
    return subs


myst_substitutions = _substitutions()


# ---------------------------------------------------------------- the line under each title
DOWNLOADS = "_downloads/tutorials"         # in the built site: <name>.py and <name>.ipynb


def _write_downloads(app, pagename):
    """Write the tutorial's source (.py) and a notebook made from it (.ipynb) into the site."""
    import jupytext
    source = pathlib.Path(app.env.doc2path(pagename))
    out = pathlib.Path(app.outdir) / DOWNLOADS
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out / source.name)
    nb = jupytext.reads(source.read_text(encoding="utf-8"), fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    (out / source.name).with_suffix(".ipynb").write_text(jupytext.writes(nb, fmt="ipynb"), encoding="utf-8")
    return source.stem


def _page_tools(app, pagename, templatename, context, doctree):
    """After the page's h1: the notation card; on tutorials also the API and the downloads."""
    if doctree is None or "body" not in context:
        return                                            # genindex, search: no article body
    def link(target, text, resource=False):              # pathto: relative to this page
        return f'<a class="reference internal" href="{html.escape(context["pathto"](target, resource))}">{text}</a>'

    tools = [link("notation", "Notation card")] if pagename != "notation" else []
    if re.fullmatch(r"\d\d_\w+", pagename):
        stem = _write_downloads(app, pagename)
        tools += [link("api", "API reference"),
                  "Download: " + link(f"{DOWNLOADS}/{stem}.py", f"{stem}.py", True) + " · "
                  + link(f"{DOWNLOADS}/{stem}.ipynb", f"{stem}.ipynb", True)]
    if tools:
        line = f'<p class="refnet-pagetools">{" · ".join(tools)}</p>'
        context["body"] = re.sub(r"</h1>", lambda m: m.group(0) + "\n" + line, context["body"], count=1)
    # each inline SVG figure opens on its own when tapped: full size, zoomable on a phone
    context["body"] = re.sub(r'<img [^>]*src="([^"]+\.svg)"[^>]*>',
                             lambda m: f'<a class="refnet-figure" href="{m.group(1)}">{m.group(0)}</a>',
                             context["body"])


def setup(app):
    app.connect("html-page-context", _page_tools)
    return {"parallel_read_safe": True}
