"""The documentation site, looked at the way a reader's browser sees it.

Builds the site with ``python -m refnet docs --strict`` (every Sphinx warning an
error, tutorials executed with REFNET_FAST=1), serves it on 127.0.0.1, opens
every page in headless Debian Chromium (driven by playwright-python; no browser
is ever downloaded) and checks that: MathJax typeset every formula (no
``mjx-merror``, no raw ``$$``, ``\\(`` or ``\\[`` left in the text), every image
loaded, every request went to the local server and succeeded, and the API page
documents every public name of ``refnet``. Screenshots of a tutorial page and
the API page go to ``$REFNET_SCREENSHOTS`` (default: the test's tmp folder).

Skips, with the reason, where Sphinx / myst-nb, playwright, Chromium or a way to
get MathJax 3 (npm or ``REFNET_MATHJAX``) is missing, except under CI (``CI`` set),
where .ci/run installs them and a skip would hide a broken install. The last
tests check the build command's own MathJax handling without a browser.
"""
import functools
import http.server
import importlib.util
import inspect
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import pytest

import refnet

ROOT = pathlib.Path(__file__).parents[1]
CHROMIUM = os.environ.get("REFNET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Public modules documented on the API page besides the names exported by refnet itself.
PUBLIC_MODULES = ["refnet.conformance", "refnet.strategies", "refnet.data"]


def _missing():
    for module, what in [("sphinx", "Sphinx"), ("myst_nb", "myst-nb"), ("furo", "furo"),
                         ("playwright", "playwright-python")]:
        if importlib.util.find_spec(module) is None:
            return f'{what} is not installed (pip install -e ".[docs]")'
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set REFNET_CHROMIUM)"
    if not os.environ.get("REFNET_MATHJAX") and shutil.which("npm") is None:
        import refnet.docs
        if not (refnet.docs._cache_dir() / "mathjax3" / "node_modules" / "mathjax").is_dir():
            return "MathJax 3 is not available: install npm or set REFNET_MATHJAX"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site's folder (strict build, fast tutorials)."""
    if _missing() is not None:
        if os.environ.get("CI"):            # .ci/run installs all of it: a skip there would hide a broken install
            pytest.fail(f"CI must run the docs site test: {_missing()}")
        pytest.skip(_missing())
    out = tmp_path_factory.mktemp("site")
    path_ = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ, REFNET_FAST="1", PYTHONPATH=path_)
    done = subprocess.run([sys.executable, "-m", "refnet", "docs", "--strict", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"docs build failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def server(site):
    """Base URL of a local HTTP server for the site (127.0.0.1, a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    profile = tmp_path_factory.mktemp("chromium-profile")      # a fresh user-data-dir
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM,
                                                        headless=True, args=CHROMIUM_ARGS,
                                                        viewport={"width": 1280, "height": 900})
        yield context
        context.close()


# Runs in the page once MathJax is done: what a reader would see wrong.
PAGE_REPORT = """() => {
  const bad = (el) => el.outerHTML.slice(0, 200);
  const math = [...document.querySelectorAll('.math')];
  const text = document.body.cloneNode(true);
  text.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  const raw = text.textContent;
  return {
    mathjax: typeof window.MathJax !== 'undefined' && typeof window.MathJax.startup !== 'undefined',
    n_math: math.length,
    untypeset: math.filter(el => !el.querySelector('mjx-container')).map(bad),
    merror: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent),
    raw_tex: ['$$', '\\\\(', '\\\\)', '\\\\[', '\\\\]'].filter(s => raw.includes(s))
             .concat((raw.match(/\\$[^$\\s][^$\\n]*\\$/g) || []).slice(0, 5)),
    images: [...document.images].map(img => ({src: img.currentSrc || img.src,
                                              ok: img.complete && img.naturalWidth > 0})),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  };
}"""


def _pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))


def _open(browser, server, page_path, screenshot=None):
    """Open one page; return (the page's report, [requests that left the server], [failed requests])."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page = browser.new_page()
    outside, failed = [], []

    def route(r):        # the only way out of the page: local and inline URLs pass, anything else is aborted
        url = r.request.url
        if url.startswith(server) or url.startswith(("data:", "blob:", "about:")):
            r.continue_()
        else:
            outside.append(url)
            r.abort()
    page.route("**/*", route)
    page.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and failed.append(f"{resp.url} (HTTP {resp.status})"))
    page.goto(server + page_path, wait_until="load")
    started = True
    try:            # a page with math defines window.MathJax (its config) before the script has loaded
        page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)",
                               timeout=20_000)
        page.evaluate("() => window.MathJax ? MathJax.startup.promise.then(() => true) : true")
    except PlaywrightTimeout:
        started = False
    page.wait_for_load_state("networkidle")        # fonts and extensions MathJax fetched after typesetting
    report = page.evaluate(PAGE_REPORT)
    report["mathjax"] = report["mathjax"] and started
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=False)
    page.close()
    return report, outside, failed


def test_every_page_renders_offline(site, server, browser, tmp_path):
    shots = pathlib.Path(os.environ.get("REFNET_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    pages = _pages(site)
    tutorials = [p for p in pages if p[:2].isdigit()]
    assert tutorials and {"index.html", "api.html", "design.html"} <= set(pages), pages
    problems, total_math = [], 0
    for path in pages:
        shot = shots / f"{path[:-5]}.png" if path in ("api.html", tutorials[-1]) else None
        report, outside, failed = _open(browser, server, path, shot)
        srcs = [img["src"] for img in report["images"]]
        found = {"requested outside the site": outside, "failed requests": failed,
                 "math but MathJax did not start": report["n_math"] and not report["mathjax"],
                 "math left untypeset": report["untypeset"][:3], "MathJax errors": report["merror"],
                 "raw TeX in the text": report["raw_tex"],
                 "images not loaded": [img["src"][:100] for img in report["images"] if not img["ok"]],
                 "figure shown twice": sorted({src[:100] for src in srcs if srcs.count(src) > 1})}
        problems += [f"{path}: {what}: {value}" for what, value in found.items() if value]
        total_math += report["n_math"]
    assert not problems, "\n".join(problems)
    assert total_math > 0, "no page has any math"


def test_tutorials_show_their_figures(site, server, browser):
    """Every tutorial that draws a figure shows it inline (a PNG in the page, not a file on disk)."""
    for path in [p for p in _pages(site) if p[:2].isdigit()]:
        source = (ROOT / "tutorials" / path).with_suffix(".py").read_text()
        if "plt." not in source and "matplotlib" not in source:
            continue
        report, _, _ = _open(browser, server, path)
        assert [i for i in report["images"] if i["ok"]], f"{path} draws figures but shows none inline"


def _public_names():
    """Classes and functions exported by ``refnet`` (what ``import refnet`` gives a user)."""
    return sorted(name for name, obj in vars(refnet).items()
                  if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)))


def test_api_page_lists_the_public_api(site, server, browser):
    names = _public_names()
    assert {"MLP", "flatten", "unflatten", "SGD", "Momentum", "AveragedMomentum", "average_incoming",
            "averaging_matrix", "project_out", "frozen_step", "Projected", "masked_grads", "FrozenInfo",
            "RetractionError", "save", "load"} <= set(names)
    report, _, _ = _open(browser, server, "api.html")
    ids = set(report["ids"])
    missing = [n for n in names if f"refnet.{n}" not in ids]
    assert not missing, f"API page lacks public names: {missing}"
    missing = [m for m in PUBLIC_MODULES if f"module-{m}" not in ids]
    assert not missing, f"API page lacks public modules: {missing}"


# ---------------------------------------------------------------- the build command's own checks (no browser)
def _fake_mathjax(root, version):
    """A folder shaped like the mathjax npm package, with parts a page needs and parts it does not."""
    for part in ["es5/tex-chtml.js", "es5/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                 "es5/input/tex/extensions/boldsymbol.js", "es5/sre/speech-worker.js", "es5/tex-svg.js", "LICENSE"]:
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        (root / part).write_text("//")
    (root / "package.json").write_text(f'{{"name": "mathjax", "version": "{version}"}}')
    return root


def test_mathjax_static_holds_only_what_pages_load(tmp_path, monkeypatch):
    import refnet.docs
    monkeypatch.setenv("REFNET_MATHJAX", str(_fake_mathjax(tmp_path / "mj", "3.2.2")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    static = refnet.docs.mathjax_static() / "mathjax"
    files = sorted(f.relative_to(static).as_posix() for f in static.rglob("*") if f.is_file())
    assert files == ["LICENSE", "input/tex/extensions/boldsymbol.js",
                     "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff", "tex-chtml.js"]


@pytest.mark.parametrize("version", ["4.0.0", "2.7.9"])
def test_mathjax_other_than_3_is_refused(tmp_path, monkeypatch, version):
    import refnet.docs       # MathJax 4 fetches fonts from a CDN; 2 is another API
    monkeypatch.setenv("REFNET_MATHJAX", str(_fake_mathjax(tmp_path / "mj", version)))
    with pytest.raises(RuntimeError, match=f"REFNET_MATHJAX: expected mathjax 3.x .* found version {version}"):
        refnet.docs.mathjax_package()


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    import refnet.docs
    monkeypatch.delenv("REFNET_MATHJAX", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))          # an empty cache: npm would be needed
    monkeypatch.setattr(refnet.docs.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="install npm .* or set REFNET_MATHJAX"):
        refnet.docs.mathjax_package()


def test_build_without_sources_is_a_clear_error(tmp_path):
    import refnet.docs
    with pytest.raises(RuntimeError, match=r"no site sources at .*tutorials/conf.py"):
        refnet.docs.build(tmp_path / "out", source=tmp_path)
