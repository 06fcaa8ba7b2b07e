"""Build the documentation site: ``python -m refnet docs --out DIR [--strict] [--clean]``.

The site's sources live in ``tutorials/`` next to the package (a checkout, or
``pip install -e ".[docs]"``): ``conf.py``, the Markdown pages and the jupytext
``py:percent`` tutorials, which Sphinx + myst-nb execute at build time so their
printed output and figures appear inline. ``REFNET_FAST=1`` is passed on to
the tutorials (short runs).

Executed tutorials are cached (myst-nb's jupyter-cache mode): a tutorial whose
code cells, refnet's files, ``REFNET_FAST`` and the Python version are unchanged
is not executed again. The cache lives outside the checkout
(``~/.cache/refnet/jupyter-cache``, ``--cache DIR``); ``--clean`` executes all.
The tutorials to execute run side by side, each in its own kernel (``--jobs N``
at a time; default one per CPU; longest first when the last build timed them),
before Sphinx renders the pages.
A build writes only into ``--out`` and the cache (Sphinx's doctrees and myst-nb's
``jupyter_execute/`` go to a temporary folder) and prints each tutorial with the
elapsed time. The paths are checked before any work.

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
import hashlib
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

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


def writable_folder(path, arg: str) -> pathlib.Path:
    """The folder ``path``, created with its parents if missing and checked writable.

    ``arg`` names the argument in errors. Raises ValueError (one line) for an empty
    path, an existing file, or a folder that cannot be created or written to.
    """
    text = os.fspath(path)
    if text == "":
        raise ValueError(f"{arg} is an empty path; expected a folder (it is created if missing)")
    folder = pathlib.Path(text)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{arg} {text!r} is an existing file; expected a folder (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{arg} {text!r}: cannot create this folder ({e.strerror or e})") from None
    try:
        with tempfile.TemporaryFile(dir=folder):                        # os.access says yes to root, even on /sys
            pass
    except OSError as e:
        raise ValueError(f"{arg} {text!r}: cannot write into this folder ({e.strerror or e})") from None
    return folder.resolve()


def _fingerprint(source=SOURCE) -> str:
    """What executed tutorials depend on besides their own code cells (which jupyter-cache hashes):
    this refnet's files (code and data), the site's ``conf.py`` (it sets the kernels' figure
    format), ``REFNET_FAST`` and the Python version."""
    package = pathlib.Path(__file__).resolve().parent
    h = hashlib.sha256(f"{os.environ.get('REFNET_FAST', '')}\0{sys.version}".encode())
    conf = pathlib.Path(source) / "conf.py"
    h.update(b"\0conf.py\0" + (conf.read_bytes() if conf.is_file() else b""))
    for f in sorted(package.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(f"\0{f.relative_to(package).as_posix()}\0".encode() + f.read_bytes())
    return "refnet-" + h.hexdigest()[:16]


class _Progress:
    """One line per tutorial, with the elapsed time: executed side by side, then rendered; or
    started, then executed or taken from the cache (what myst-nb itself did).

    Sphinx runs quiet (its warnings still go to stderr); Sphinx's ``source-read`` and
    ``doctree-read`` events bracket each page, and myst-nb's "Using cached notebook"
    log record says that a tutorial was not executed.
    """

    def __init__(self, show: bool):
        self.show, self.t0, self.started, self.cached, self.prerun = show, time.perf_counter(), {}, set(), set()

    def say(self, text: str) -> None:
        seconds = int(time.perf_counter() - self.t0)
        if self.show:
            print(f"[{seconds // 60:2d}:{seconds % 60:02d}] {text}", flush=True)

    def connect(self, app) -> None:
        app.connect("source-read", self.read)
        app.connect("doctree-read", self.done)

    def read(self, app, docname, source) -> None:
        if app.env.doc2path(docname).suffix == ".py":                  # a tutorial (jupytext py:percent)
            self.started[docname] = time.perf_counter()
            if docname not in self.prerun:
                self.say(f"{docname}: started (executed unless the cache holds this code) ...")

    def done(self, app, doctree) -> None:
        docname = app.env.docname
        if docname in self.started:
            seconds = time.perf_counter() - self.started.pop(docname)
            if docname not in self.cached:
                how = "executed"
            else:                                                       # prerun: executed side by side, above
                how = "rendered" if docname in self.prerun else "code unchanged, outputs from the cache"
            self.say(f"{docname}: {how} ({seconds:.1f} s)")

    def handle(self, record) -> None:                                 # a logging handler's emit
        if str(record.msg).startswith("Using cached notebook"):
            self.cached.add(getattr(record, "docname", None))


def _execute_ahead(progress: _Progress, jobs: int | None):
    """A Sphinx ``env-before-read-docs`` handler: execute the tutorials the cache lacks, ``jobs``
    at a time (None: one per CPU), and cache each executed notebook as myst-nb's cache mode does.

    Sphinx reads (and myst-nb executes) one page after another; a kernel is a process of its
    own, so threads that each wait on one kernel run the tutorials side by side. The notebooks
    are read with myst-nb's own reader and executed with jupyter-cache's own function, with
    the site's timeout, in a temporary folder. When myst-nb reads the page it finds the
    notebook in the cache. A tutorial that fails here is not cached: myst-nb executes it again
    in its turn and reports the error as it always does. Each tutorial's time is kept next to
    the cache's folders (``SECONDS``, which ``--clean`` keeps): when every tutorial to run has
    one, the longest start first, so that none waits behind the others at the end.
    """
    def handler(app, env, docnames) -> None:
        from concurrent.futures import ThreadPoolExecutor
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn
        from jupyter_cache.executors.utils import single_nb_execution
        from myst_nb.core.read import create_nb_reader

        config = env.mystnb_config
        cache = get_cache(config.execution_cache_path)
        todo = {}
        for docname in sorted(docnames):
            path = pathlib.Path(env.doc2path(docname))
            if path.suffix != ".py":
                continue
            text = path.read_text(encoding="utf-8")
            notebook = create_nb_reader(str(path), env.myst_config, config, text).read(text)
            try:
                cache.match_cache_notebook(notebook)
            except KeyError:                                            # not cached: execute it here
                todo[docname] = (path, notebook)
        if not todo:
            return
        times = pathlib.Path(config.execution_cache_path).parent / SECONDS    # kept by --clean
        seconds = _read_seconds(times)
        timed = all(d in seconds for d in todo)
        if timed:                        # longest first, one per CPU: the longest does not wait behind the rest
            todo = dict(sorted(todo.items(), key=lambda item: -seconds[item[0]]))
        workers = jobs or min(len(todo), os.cpu_count() or 1)
        what = f"{len(todo)} tutorial" + "s" * (len(todo) != 1)
        how = ", longest first (the last build's times)" if timed else ""
        progress.say(f"executing {what}, up to {workers} at a time{how}: {', '.join(todo)} ...")

        def execute(docname):
            path, notebook = todo[docname]
            try:
                with tempfile.TemporaryDirectory(prefix="refnet-kernel-") as cwd:
                    result = single_nb_execution(notebook, cwd=cwd, timeout=config.execution_timeout,
                                                 allow_errors=config.execution_allow_errors)
            except Exception:                                           # e.g. a kernel that died: as a failure
                result = None
            if result is not None and result.err is None:
                progress.prerun.add(docname)
                progress.say(f"{docname}: executed ({result.time:.1f} s)")
                return docname, path, result
            progress.say(f"{docname}: failed; executed again in its turn to report the error")
            return docname, path, None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(execute, todo))
        for docname, path, result in results:                          # the cache's database: one writer
            if result is not None:
                cache.cache_notebook_bundle(CacheBundleIn(result.nb, str(path),
                                                          data={"execution_seconds": result.time}),
                                            check_validity=False, overwrite=True)
                seconds[docname] = round(result.time, 1)
        times.write_text(json.dumps(seconds, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return handler


SECONDS = "tutorial-seconds.json"       # next to the cache's per-refnet folders: {docname: seconds}


def _read_seconds(path: pathlib.Path) -> dict:
    """The tutorials' execution times of the last build ({} when missing or unreadable)."""
    try:
        seconds = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(seconds, dict) and all(isinstance(v, (int, float)) for v in seconds.values())
    return seconds if ok else {}


@contextlib.contextmanager
def _logs(progress: _Progress):
    """Sphinx's log records also go to ``progress``; nbclient's INFO records ("Executing notebook
    with kernel"), which reach stderr because the theme's accessible-pygments calls
    ``logging.basicConfig(level=INFO)`` at import, do not."""
    handler, sphinx_log, nbclient_log = logging.Handler(), logging.getLogger("sphinx"), logging.getLogger("traitlets")
    handler.emit, level = progress.handle, nbclient_log.level
    sphinx_log.addHandler(handler)
    nbclient_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        sphinx_log.removeHandler(handler)
        nbclient_log.setLevel(level)


def checked_jobs(jobs, prefix: str = ""):
    """``jobs`` for :func:`build`: None (one per CPU) or a positive int, else ValueError."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"{prefix}jobs must be a positive integer (tutorials executed at once), got {jobs!r}")
    return jobs


def checked_paths(out, source=None, cache=None, prefix: str = ""):
    """(source, out, the cache subfolder for this refnet) for :func:`build`, checked before any work.

    ``out`` and ``cache`` are created if missing (see :func:`writable_folder`);
    ``out`` must lie outside the sources. Errors name the arguments as
    ``prefix + "out"`` etc. (the command line passes ``"--"``).
    Raises RuntimeError when ``source`` holds no ``conf.py``, ValueError for the folders.
    """
    source = pathlib.Path(source).resolve() if source is not None else SOURCE
    if not (source / "conf.py").is_file():
        raise RuntimeError(f"no site sources at {source} (tutorials/conf.py): build from a checkout, "
                           f'installed with pip install -e ".[docs]", or pass {prefix}source')
    target = pathlib.Path(os.fspath(out)).resolve()                    # checked before anything is created
    if os.fspath(out) and (target == source or source in target.parents):
        raise ValueError(f"{prefix}out {str(target)!r} is inside the site sources {str(source)!r}; "
                         f"choose a folder outside them")
    cache = writable_folder(_cache_dir() / "jupyter-cache" if cache is None else cache, f"{prefix}cache")
    return source, writable_folder(out, f"{prefix}out"), cache / _fingerprint(source)


def build(out, *, strict: bool = False, source=None, cache=None, clean: bool = False,
          progress: bool = True, jobs: int | None = None) -> pathlib.Path:
    """Build the HTML site from ``source`` (default: the checkout's ``tutorials/``) into ``out``.

    ``out`` is created if missing. ``strict=True`` turns every Sphinx warning into an error.
    Executed tutorials are cached with myst-nb's jupyter-cache mode, keyed by each
    tutorial's code cells, in ``cache`` (default ``~/.cache/refnet/jupyter-cache``, or
    under ``$XDG_CACHE_HOME``) in a subfolder for this refnet's files, ``REFNET_FAST``
    and the Python version: a tutorial is executed again when its code or refnet
    changed. ``clean=True`` empties that subfolder first, so every tutorial executes.
    Nothing is written into the sources or next to ``out``: Sphinx's doctrees and
    myst-nb's ``jupyter_execute/`` live in a temporary folder. Progress (each tutorial
    and the elapsed time) goes to stdout unless ``progress=False``.
    The tutorials to execute run side by side, ``jobs`` at a time (default: one per
    CPU; each is its own kernel process; longest first when the last build timed
    them all), then Sphinx renders the pages from the cache. While several may run
    at once each kernel's BLAS gets one thread
    (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``, unless
    set): kernels, not BLAS threads, share the cores.
    Returns the path of ``index.html``. Raises ValueError for an unusable ``out`` or
    ``cache`` folder or ``jobs``, RuntimeError when the sources, Sphinx or MathJax are
    missing or the build fails.
    """
    jobs = checked_jobs(jobs)
    source, out, executed = checked_paths(out, source, cache)
    try:
        from sphinx.application import Sphinx
        from sphinx.util.docutils import docutils_namespace, patch_docutils
    except ImportError:
        raise RuntimeError('building the docs needs Sphinx and myst-nb: pip install -e ".[docs]"') from None
    if clean:
        shutil.rmtree(executed, ignore_errors=True)
    log = _Progress(progress)
    log.say(f"building the site from {source} (executed tutorials cached in {executed})")
    overrides = {"nb_execution_mode": "cache", "nb_execution_cache_path": str(executed),
                 "nb_execution_in_temp": True}                       # kernels run in a temporary folder
    with tempfile.TemporaryDirectory(prefix="refnet-docs-") as tmp:
        # The tutorials' kernels inherit this environment (REFNET_FAST included): this checkout's
        # refnet first on the path, inline figures (not Agg), the PNG files they also save in tmp,
        # and no debugger warning from every kernel start.
        path = os.pathsep.join([str(source.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env = dict(PYTHONPATH=path, MPLBACKEND="module://matplotlib_inline.backend_inline", REFNET_OUT=tmp,
                   PYDEVD_DISABLE_FILE_VALIDATION="1")
        if jobs != 1:                                               # one BLAS thread per kernel, unless set
            env.update({k: os.environ.get(k, "1") for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                            "MKL_NUM_THREADS")})
        html = pathlib.Path(tmp) / "html"                           # myst-nb writes html/../jupyter_execute
        try:
            with _environ(**env), patch_docutils(source), docutils_namespace():
                app = Sphinx(source, source, html, pathlib.Path(tmp) / "doctrees", "html", confoverrides=overrides,
                             status=None, warning=sys.stderr, freshenv=True, warningiserror=strict)
                log.connect(app)
                app.connect("env-before-read-docs", _execute_ahead(log, jobs))
                with _logs(log):
                    app.build()
        except Exception as e:                                      # what sphinx-build reports as an error
            raise RuntimeError(f"the build failed: {type(e).__name__}: {e}") from e
        if app.statuscode != 0:
            why = "--strict makes each Sphinx warning above an error" if strict else "see the messages above"
            raise RuntimeError(f"the build failed (Sphinx status {app.statuscode}): {why}")
        shutil.copytree(html, out, dirs_exist_ok=True)
    log.say(f"site built: {out / 'index.html'}")
    return out / "index.html"


def _int(text):
    """A command-line number as an int, or the text itself when it is not one (the check names it)."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return text


def main(args) -> int:
    """The ``docs`` subcommand: validate the paths (exit 2 with one line), build (exit 1 if it fails)."""
    try:
        jobs = checked_jobs(_int(args.jobs), prefix="--")                 # one line for "x" too, not argparse's two
        checked_paths(args.out, args.source, args.cache, prefix="--")
        build(args.out, strict=args.strict, source=args.source, cache=args.cache, clean=args.clean, jobs=jobs)
    except ValueError as e:
        print(f"refnet docs: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"refnet docs: {e}", file=sys.stderr)
        return 1
    return 0
