"""Build the documentation site: ``python -m refnet docs --out DIR [--strict]``.

The site's sources live in ``tutorials/`` next to the package (a checkout, or
``pip install -e ".[docs]"``): ``conf.py``, the Markdown pages and the jupytext
``py:percent`` tutorials, which Sphinx + myst-nb execute at build time so their
printed output and figures appear inline. ``REFNET_FAST=1`` is passed on to
the tutorials (short runs).

Every page must work offline and load nothing from outside the site, so the
math is typeset by MathJax 3 served from the site itself. MathJax comes from
the npm package ``mathjax@3`` (MathJax 4 fetches its fonts from a CDN):

* ``REFNET_MATHJAX=DIR`` names an existing copy (the package folder, holding
  ``es5/tex-chtml.js``);
* otherwise the first build runs ``npm install --no-save mathjax@3`` into a
  cache folder (``$XDG_CACHE_HOME/refnet`` or ``~/.cache/refnet``) and reuses it.

Only what the pages need is copied into the site: ``tex-chtml.js``, its woff
fonts and the TeX extensions it autoloads on demand (about 2 MB).
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

SOURCE = pathlib.Path(__file__).resolve().parents[1] / "tutorials"
# es5/ paths of the mathjax@3 package that a tex-chtml page loads: the combined
# component, the fonts it links (output/chtml/fonts/woff-v2) and the TeX
# extensions its autoload package fetches when a page uses e.g. \boldsymbol.
MATHJAX_PARTS = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions")


def _cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "refnet"


def mathjax_package() -> pathlib.Path:
    """Folder of a MathJax 3 npm package (with ``es5/tex-chtml.js``); installs it with npm if needed.

    Raises RuntimeError saying what to do when ``REFNET_MATHJAX`` is wrong or npm is missing.
    """
    given = os.environ.get("REFNET_MATHJAX")
    if given:
        pkg = pathlib.Path(given)
        _check_mathjax(pkg, "REFNET_MATHJAX")
        return pkg
    prefix = _cache_dir() / "mathjax3"
    pkg = prefix / "node_modules" / "mathjax"
    if not (pkg / "es5" / "tex-chtml.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("building the docs needs MathJax 3: install npm (Debian: apt-get install npm) "
                               "or set REFNET_MATHJAX to a folder holding the mathjax@3 npm package")
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix),
                               "mathjax@3"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"npm install mathjax@3 failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    _check_mathjax(pkg, "the npm cache " + str(prefix))
    return pkg


def _check_mathjax(pkg: pathlib.Path, where: str) -> None:
    try:
        version = json.loads((pkg / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        raise RuntimeError(f"{where}: {pkg} is not a mathjax npm package (no package.json with a version)") from None
    if not version.startswith("3.") or not (pkg / "es5" / "tex-chtml.js").is_file():
        raise RuntimeError(f"{where}: expected mathjax 3.x with es5/tex-chtml.js, found version {version} at {pkg}")


def mathjax_static() -> pathlib.Path:
    """A folder to add to ``html_static_path``: ``mathjax/`` with only the parts a page loads.

    The site then refers to ``_static/mathjax/tex-chtml.js``; MathJax finds its fonts and
    extensions relative to that script, so nothing is fetched from outside the site.
    """
    pkg = mathjax_package()
    version = json.loads((pkg / "package.json").read_text())["version"]
    static = _cache_dir() / f"mathjax-static-{version}"
    if not (static / "mathjax" / "tex-chtml.js").is_file():
        tmp = static.with_name(static.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for part in MATHJAX_PARTS:
            src, dst = pkg / "es5" / part, tmp / "mathjax" / part
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        shutil.copy2(pkg / "LICENSE", tmp / "mathjax" / "LICENSE")   # Apache-2.0: ship its license
        with contextlib.suppress(OSError):
            tmp.replace(static)                                      # atomic; a concurrent build may have won
        shutil.rmtree(tmp, ignore_errors=True)
    return static


@contextlib.contextmanager
def _environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build(out, *, strict: bool = False, source=None) -> pathlib.Path:
    """Build the HTML site from ``source`` (default: the checkout's ``tutorials/``) into ``out``.

    ``strict=True`` turns every Sphinx warning into an error. Returns the path of ``index.html``.
    Raises RuntimeError when the sources, Sphinx or MathJax are missing, or the build fails.
    """
    source = pathlib.Path(source) if source is not None else SOURCE
    if not (source / "conf.py").is_file():
        raise RuntimeError(f"no site sources at {source} (tutorials/conf.py): build from a checkout, "
                           'installed with pip install -e ".[docs]", or pass --source')
    try:
        from sphinx.cmd.build import build_main
    except ImportError:
        raise RuntimeError('building the docs needs Sphinx and myst-nb: pip install -e ".[docs]"') from None
    out = pathlib.Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="refnet-docs-") as tmp:
        args = ["-b", "html", "-q", "-E", "-T", "-d", str(pathlib.Path(tmp) / "doctrees")]
        args += ["-W", "--keep-going"] if strict else []
        # The tutorials' kernels inherit this environment (REFNET_FAST included): this checkout's
        # refnet first on the path, inline figures (not Agg), the PNG files they also save in tmp.
        path = os.pathsep.join([str(source.resolve().parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        with _environ(PYTHONPATH=path, MPLBACKEND="module://matplotlib_inline.backend_inline", REFNET_OUT=tmp):
            status = build_main(args + [str(source), str(out)])
    if status != 0:
        raise RuntimeError(f"sphinx-build failed (exit {status}); see the messages above")
    return out / "index.html"


def main(args) -> int:
    """The ``docs`` subcommand: build, then print where the site is."""
    try:
        index = build(args.out, strict=args.strict, source=args.source)
    except RuntimeError as e:
        print(f"refnet docs: {e}", file=sys.stderr)
        return 1
    print(f"site built: {index}")
    return 0
