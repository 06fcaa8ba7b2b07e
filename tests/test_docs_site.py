"""The documentation site, looked at the way a reader's browser sees it.

Builds the site with ``python -m refnet docs --strict`` (every Sphinx warning an
error, tutorials executed with REFNET_FAST=1), serves it on 127.0.0.1, opens
every page in headless Debian Chromium (driven by playwright-python; no browser
is ever downloaded) and checks that: MathJax typeset every formula (no
``mjx-merror``, no raw ``$$``, ``\\(`` or ``\\[`` left in the text), every image
loaded, every request went to the local server and succeeded, and the API page
documents every public name of ``refnet``, each with its Parameters, Returns and
Examples. It also looks at the layout a reader gets at 1280 px (a laptop) and
390 px (a phone): no code or output block is clipped, display math fits or
scrolls in its own box, no page scrolls sideways; every tutorial shows an SVG
figure and offers its source as .py and .ipynb; code blocks have copy buttons;
every page links the notation card. The first screen of every page at both
widths is saved to ``$REFNET_SCREENSHOTS`` (default: a tmp folder) as
``<page>-<width>.png``.

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
# The verification kit's modules tutorial 03 uses, each rendered with its functions' sections.
KIT_MODULES = ["refnet.conformance.layout", "refnet.conformance.golden", "refnet.conformance.tolerances"]


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


# Runs in the page once MathJax is done: what a reader would see wrong, at the page's width.
PAGE_REPORT = """() => {
  const bad = (el) => el.outerHTML.slice(0, 200);
  const math = [...document.querySelectorAll('.math')];
  const text = document.body.cloneNode(true);
  text.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  const raw = text.textContent;
  const shown = (el) => el.getClientRects().length > 0;
  const offscreen = (el) => { const r = el.getBoundingClientRect();
                              return r.left < -1 || r.right > window.innerWidth + 1; };
  // A display formula is fine when the first box from it up to its div.math that scrolls
  // sideways is on the screen (what it holds may extend past it: that is what scrolls), or,
  // where no box scrolls, when none cuts the formula off or lets it spill past div.math.
  const mathBad = (el) => {
    for (let box = el; box; box = box.parentElement) {
      const over = box.scrollWidth - box.clientWidth, x = getComputedStyle(box).overflowX;
      if (x === 'auto' || x === 'scroll') return offscreen(box) ? 'scroll box off screen' : null;
      if (over > 1 && x !== 'visible') return `clipped ${box.scrollWidth}>${box.clientWidth}px`;
      if (box.matches('div.math, article'))
        return over > 1 ? `spills ${box.scrollWidth}>${box.clientWidth}px` : offscreen(el) ? 'off screen' : null;
    }
    return null;
  };
  const codeBlocks = [...document.querySelectorAll('pre, div.highlight')].filter(shown);
  const displayMath = [...document.querySelectorAll('mjx-container[display="true"]')];
  return {
    width: window.innerWidth,
    mathjax: typeof window.MathJax !== 'undefined' && typeof window.MathJax.startup !== 'undefined',
    n_math: math.length,
    untypeset: math.filter(el => !el.querySelector('mjx-container')).map(bad),
    merror: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent),
    raw_tex: ['$$', '\\\\(', '\\\\)', '\\\\[', '\\\\]'].filter(s => raw.includes(s))
             .concat((raw.match(/\\$[^$\\s][^$\\n]*\\$/g) || []).slice(0, 5)),
    images: [...document.images].map(img => ({src: img.currentSrc || img.src,
                                              ok: img.complete && img.naturalWidth > 0})),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    // code and output blocks whose text runs past their box (cut off, or behind a scrollbar)
    n_code: codeBlocks.length,
    clipped: codeBlocks.filter(el => el.scrollWidth > el.clientWidth + 1)
               .map(el => `${el.scrollWidth}>${el.clientWidth}px: ${el.textContent.trim().slice(0, 90)}`),
    page_overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    n_display_math: displayMath.length,
    math_bad: displayMath.map(el => [mathBad(el), el.textContent.slice(0, 60)]).filter(([why]) => why)
                .map(([why, tex]) => `${why}: ${tex}`),
    figures: [...document.querySelectorAll('article div.cell_output img')]
               .map(img => ({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
                             opens: img.closest('a') ? img.closest('a').href : null})),
    no_copy_button: [...document.querySelectorAll('div.highlight pre')]
                      .filter(pre => !pre.parentElement.querySelector('button.copybtn'))
                      .map(pre => pre.textContent.trim().slice(0, 60)),
    downloads: [...document.querySelectorAll('article p.refnet-pagetools a')].map(a => a.href)
                 .filter(h => /\\.(py|ipynb)$/.test(h)),
    notation_links: [...document.querySelectorAll('a[href]')]
                      .filter(a => new URL(a.href).pathname.endsWith('/notation.html'))
                      .map(a => a.closest('article') ? 'article' : 'navigation'),
  };
}"""
PHONE, DESKTOP = 390, 1280                 # CSS px: a phone in portrait, a laptop


def _pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))


def _open(browser, server, page_path, screenshot=None, width=DESKTOP):
    """Open one page ``width`` CSS px wide; return (its report, [requests that left the server],
    [failed requests])."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900 if width >= 800 else 844})
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
    page.goto(server + page_path, wait_until="load", timeout=90_000)
    started = True
    try:            # a page with math defines window.MathJax (its config) before the script has loaded
        page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)",
                               timeout=20_000)
        page.evaluate("() => window.MathJax ? MathJax.startup.promise.then(() => true) : true")
    except PlaywrightTimeout:
        started = False
    # fonts and extensions MathJax fetched after typesetting (generous: a loaded machine is slow)
    page.wait_for_load_state("networkidle", timeout=90_000)
    report = page.evaluate(PAGE_REPORT)
    report["mathjax"] = report["mathjax"] and started
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=False)
    page.close()
    return report, outside, failed


@pytest.fixture(scope="module")
def seen(site, server, browser, tmp_path_factory):
    """{(page, width): (report, outside, failed)}: every page opened at 1280 and at 390 px, the
    first screen of each saved as ``<page>-<width>.png`` in ``$REFNET_SCREENSHOTS`` (or a tmp folder)."""
    shots = pathlib.Path(os.environ.get("REFNET_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    return {(path, width): _open(browser, server, path, shots / f"{path[:-5]}-{width}.png", width)
            for path in _pages(site) for width in (DESKTOP, PHONE)}


def _tutorials(site):
    return [p for p in _pages(site) if p[:2].isdigit()]


def test_every_page_renders_offline(site, seen):
    pages = _pages(site)
    assert _tutorials(site) and {"index.html", "api.html", "design.html", "notation.html"} <= set(pages), pages
    problems, total_math = [], 0
    for path in pages:
        report, outside, failed = seen[path, DESKTOP]
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


def test_nothing_is_clipped(site, seen):
    """At 1280 px every code and output block shows all of its text (it fits or wraps); at 390 px
    each display formula fits or scrolls inside its own box; at neither does the page scroll sideways."""
    problems, n_code, n_math = [], 0, 0
    for path in _pages(site):
        wide, phone = seen[path, DESKTOP][0], seen[path, PHONE][0]
        assert (wide["width"], phone["width"]) == (DESKTOP, PHONE)
        problems += [f"{path} at {DESKTOP} px: code/output clipped: {c}" for c in wide["clipped"]]
        problems += [f"{path} at {PHONE} px: display math {m}" for m in phone["math_bad"]]
        problems += [f"{path} at {w} px: the page scrolls sideways by {r['page_overflow']} px"
                     for w, r in [(DESKTOP, wide), (PHONE, phone)] if r["page_overflow"] > 0]
        n_code, n_math = n_code + wide["n_code"], n_math + phone["n_display_math"]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    assert n_code > 0 and n_math > 0, (n_code, n_math)           # the checks looked at something


def test_every_tutorial_shows_an_svg_figure(site, seen):
    """Each tutorial draws at least one figure at build time, shown inline as SVG (sharp at any zoom)
    and linked to itself (a tap on a phone opens it full size)."""
    problems = []
    for path in _tutorials(site):
        figures = seen[path, DESKTOP][0]["figures"]
        if not [f for f in figures if f["ok"]]:
            problems.append(f"{path}: no figure")
        problems += [f"{path}: not SVG: {f['src'][-60:]}" for f in figures if not f["src"].endswith(".svg")]
        problems += [f"{path}: figure does not open full size when tapped: {f['src'][-60:]}"
                     for f in figures if f["opens"] != f["src"]]
    assert not problems, "\n".join(problems)


def test_copy_buttons_and_a_notation_link_on_every_page(site, seen):
    """Every code block has a copy button; every page links the notation card, and every page made
    from a source file (not genindex/search) does so in the line under its title."""
    problems = []
    generated = {"genindex.html", "search.html", "py-modindex.html", "notation.html"}
    for path in _pages(site):
        report = seen[path, DESKTOP][0]
        problems += [f"{path}: code block without a copy button: {c!r}" for c in report["no_copy_button"]]
        if not report["notation_links"]:
            problems.append(f"{path}: no link to the notation card")
        elif path not in generated and "article" not in report["notation_links"]:
            problems.append(f"{path}: no notation-card link under the title")
    assert not problems, "\n".join(problems)
    assert sum(seen[p, DESKTOP][0]["n_code"] for p in _pages(site)) > 0


def test_tutorials_download_as_py_and_ipynb(site, seen):
    """Each tutorial page links its source (.py, identical to the checkout's) and a notebook
    (.ipynb) made from it; both links resolve (HTTP 200)."""
    import urllib.request
    import nbformat
    for path in _tutorials(site):
        stem, links = path[:-5], seen[path, DESKTOP][0]["downloads"]
        assert sorted(link.rsplit("/", 1)[-1] for link in links) == [f"{stem}.ipynb", f"{stem}.py"], (path, links)
        for link in links:
            with urllib.request.urlopen(link) as resp:
                assert resp.status == 200, (link, resp.status)
                body = resp.read().decode("utf-8")
            if link.endswith(".py"):
                assert body == (ROOT / "tutorials" / f"{stem}.py").read_text(encoding="utf-8"), link
            else:
                nb = nbformat.reads(body, as_version=4)
                nbformat.validate(nb)                     # raises on a notebook Jupyter would not open
                assert nb.metadata.kernelspec.name == "python3", link
                assert [c for c in nb.cells if c.cell_type == "code"], link


def _public_names():
    """Classes and functions exported by ``refnet`` (what ``import refnet`` gives a user)."""
    return sorted(name for name, obj in vars(refnet).items()
                  if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)))


def test_api_page_lists_the_public_api(seen):
    names = _public_names()
    assert {"MLP", "flatten", "unflatten", "SGD", "Momentum", "AveragedMomentum", "average_incoming",
            "averaging_matrix", "project_out", "frozen_step", "Projected", "masked_grads", "FrozenInfo",
            "RetractionError", "save", "load"} <= set(names)
    ids = set(seen["api.html", DESKTOP][0]["ids"])
    missing = [n for n in names if f"refnet.{n}" not in ids]
    assert not missing, f"API page lacks public names: {missing}"
    missing = [m for m in PUBLIC_MODULES if f"module-{m}" not in ids]
    assert not missing, f"API page lacks public modules: {missing}"


# Runs on the API page: the section headings (napoleon's field lists and rubrics) of each entry's
# own description, not of its methods'.
API_SECTIONS = """(ids) => Object.fromEntries(ids.map(id => {
  const dt = document.getElementById(id);
  if (!dt) return [id, null];
  const own = [...dt.nextElementSibling.children];
  const fields = own.filter(e => e.matches('dl.field-list'))
                    .flatMap(dl => [...dl.querySelectorAll(':scope > dt')]);
  const rubrics = own.filter(e => e.matches('p.rubric'));
  return [id, fields.concat(rubrics).map(e => e.textContent.replace(/[:\\s]+$/, '').trim())];
}))"""


def test_api_entries_have_parameters_returns_and_examples(site, server, browser):
    """Every public function of refnet documents Parameters, Returns (unless it returns None) and
    Examples; every public class (not exceptions, warnings or result tuples) Parameters and
    Examples; and the kit's modules that tutorial 03 uses are rendered."""
    needs = {}
    for name in _public_names():
        obj = getattr(refnet, name)
        if inspect.isfunction(obj):              # a function that returns nothing needs no Returns
            returns_none = inspect.signature(obj).return_annotation in (None, "None")
            needs[name] = {"Parameters", "Examples"} | (set() if returns_none else {"Returns"})
        elif not issubclass(obj, (BaseException, tuple)):
            needs[name] = {"Parameters", "Examples"}
    assert {"MLP", "project_out", "frozen_step", "Projected", "SGD"} <= set(needs)
    page = browser.new_page()
    page.goto(server + "api.html", wait_until="load")
    sections = page.evaluate(API_SECTIONS, [f"refnet.{n}" for n in needs])
    ids = set(page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)"))
    page.close()
    problems = [f"refnet.{n}: not on the API page" if sections[f"refnet.{n}"] is None else
                f"refnet.{n}: lacks {sorted(want - set(sections[f'refnet.{n}']))} "
                f"(has {sections[f'refnet.{n}']})"
                for n, want in needs.items()
                if sections[f"refnet.{n}"] is None or want - set(sections[f"refnet.{n}"])]
    problems += [f"module {m} is not rendered" for m in KIT_MODULES if f"module-{m}" not in ids]
    assert not problems, f"{len(problems)} API entries incomplete:\n" + "\n".join(problems)


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
