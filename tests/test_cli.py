"""The command line as a user meets it: ``python -m refnet docs`` and ``demo`` check their
paths before any work (one line on stderr naming the argument, exit 2, or the folder is
created where the help says so), a docs build writes nothing into the sources, the
current folder or next to ``--out``, shows each tutorial with the elapsed time, and
re-executes a tutorial only when its code changed (jupyter-cache) or ``--clean`` is given.

The build tests use a tiny site of two one-cell tutorials (seconds), never the real one.
"""
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]


def refnet_cli(*args, cwd, env=None):
    path = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ, PYTHONPATH=path, MPLBACKEND="Agg", **(env or {}))
    return subprocess.run([sys.executable, "-m", "refnet", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def one_line_error(done, prefix):
    """Exit 2 and exactly one line on stderr, starting with ``prefix``; nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), done.stderr
    assert done.stdout == ""
    return lines[0]


def unwritable(tmp_path):
    """A folder this process cannot write into (root ignores permission bits, not /sys)."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    if not os.path.isdir("/sys") or os.access("/sys", os.W_OK) and _can_write("/sys"):
        pytest.skip("no folder that root cannot write into")
    return pathlib.Path("/sys")


def _can_write(folder):
    try:
        with open(os.path.join(folder, ".refnet-probe"), "w"):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------- docs --out
@pytest.fixture
def stub(tmp_path_factory):
    """Site sources whose conf.py fails at once: a command that did not check its paths first
    fails fast with exit 1 (instead of building the real site for minutes)."""
    src = tmp_path_factory.mktemp("stub")
    (src / "conf.py").write_text("raise RuntimeError('conf.py was read: the paths were not checked first')\n")
    return str(src)


def test_docs_out_empty(tmp_path, stub):
    done = refnet_cli("docs", "--source", stub, "--out", "", cwd=tmp_path)
    line = one_line_error(done, "refnet docs: --out is an empty path")
    assert "expected a folder" in line
    assert list(tmp_path.iterdir()) == []                       # no build into the current folder


def test_docs_out_is_a_file(tmp_path, stub):
    (tmp_path / "site").write_text("mine")
    done = refnet_cli("docs", "--source", stub, "--out", "site", cwd=tmp_path)
    line = one_line_error(done, "refnet docs: --out 'site'")
    assert "is an existing file; expected a folder" in line
    assert (tmp_path / "site").read_text() == "mine"


def test_docs_out_unwritable(tmp_path, stub):
    locked = unwritable(tmp_path)
    done = refnet_cli("docs", "--source", stub, "--out", str(locked), cwd=tmp_path)
    assert "cannot write into this folder" in one_line_error(done, f"refnet docs: --out '{locked}'")
    done = refnet_cli("docs", "--source", stub, "--out", str(locked / "site"), cwd=tmp_path)
    assert "cannot create this folder" in one_line_error(done, f"refnet docs: --out '{locked / 'site'}'")


def test_docs_out_below_a_file(tmp_path, stub):
    (tmp_path / "f").write_text("")
    done = refnet_cli("docs", "--source", stub, "--out", "f/site", cwd=tmp_path)
    assert "cannot create this folder (Not a directory)" in one_line_error(done, "refnet docs: --out 'f/site'")


def test_docs_out_inside_the_sources_is_refused_before_creating_it(tmp_path, stub):
    site = os.path.join(stub, "site")
    line = one_line_error(refnet_cli("docs", "--source", stub, "--out", site, cwd=tmp_path), "refnet docs: --out")
    assert "is inside the site sources" in line and not os.path.exists(site)


def test_docs_cache_is_a_file(tmp_path, stub):
    (tmp_path / "c").write_text("")
    one_line_error(refnet_cli("docs", "--source", stub, "--out", "o", "--cache", "c", cwd=tmp_path),
                   "refnet docs: --cache 'c' is an existing file")
    assert not (tmp_path / "o").exists()                       # the cache is checked before --out is created


# ---------------------------------------------------------------------- demo --plot
@pytest.mark.parametrize("plot, fragment", [
    ("missing_dir/x.png", "--plot takes a folder, and 'missing_dir/x.png' looks like a file name"),
    ("", "--plot is an empty path"),
    ("f", "--plot 'f' is an existing file"),
    ("f/plots", "--plot 'f/plots': cannot create this folder"),
])
def test_demo_plot_path_errors(tmp_path, plot, fragment):
    (tmp_path / "f").write_text("")
    line = one_line_error(refnet_cli("demo", "--plot", plot, cwd=tmp_path), "refnet demo: ")
    assert fragment in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # nothing created, no demo run


def test_demo_plot_creates_its_folder(tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    done = refnet_cli("demo", "--section", "frozen", "--plot", "new/plots", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new" / "plots" / "frozen.png").stat().st_size > 0
    assert f"plot: {os.path.join('new/plots', 'frozen.png')}" in done.stdout


# ---------------------------------------------------------------------- docs build (tiny site)
CONF = """\
extensions = ["myst_nb"]
include_patterns = ["index.md", "[0-9][0-9]_*.py"]
source_suffix = {".md": "myst-nb", ".py": "myst-nb"}
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"
nb_execution_raise_on_error = True
"""
CELL = "# %%\nimport os\nprint('{text}' + '-output', os.getpid())\n"     # the page shows e.g. "a-output 4242"


def tiny_site(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text("# Tiny\n\n```{toctree}\n01_a\n02_b\n```\n")
    (src / "01_a.py").write_text(CELL.format(text="a"))
    (src / "02_b.py").write_text(CELL.format(text="b"))
    return src


def executed(out, page):
    """The kernel pid the page printed (a new pid: the tutorial was executed again)."""
    return int(re.search(f"{page[3]}-output ([0-9]+)", (out / f"{page}.html").read_text()).group(1))


def needs_docs_extra():
    missing = [m for m in ("sphinx", "myst_nb", "jupytext", "ipykernel", "jupyter_cache")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)}): pip install -e \".[docs]\"")


def test_docs_build_caches_by_source_and_leaves_nothing_behind(tmp_path):
    needs_docs_extra()
    src, work = tiny_site(tmp_path), tmp_path / "work"
    work.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    build = lambda out, *more: refnet_cli("docs", "--source", str(src), "--out", f"sites/{out}",
                                          "--cache", str(tmp_path / "cache"), *more, cwd=work)
    first = build("1")
    assert first.returncode == 0, first.stderr
    workers = min(2, os.cpu_count() or 1)                       # default: one per CPU
    assert f"] executing 2 tutorials, up to {workers} at a time: 01_a, 02_b ..." in first.stdout
    for page in ("01_a", "02_b"):                               # progress: each tutorial, then its page
        assert f"] {page}: executed (" in first.stdout and f"] {page}: rendered (" in first.stdout
    assert "site built: " in first.stdout and "[ 0:" in first.stdout
    # nothing in the sources, nothing in the current folder but --out, nothing next to --out
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                   if not {"cache", "sites"} & set(p.relative_to(tmp_path).parts[:2]))
    assert after == before
    assert sorted(p.name for p in (work / "sites").iterdir()) == ["1"]
    assert not list((work / "sites").rglob("jupyter_execute")) and not list(tmp_path.rglob(".jupyter_cache"))

    (src / "02_b.py").write_text(CELL.format(text="b") + "print('edited')\n")
    second = build("2")
    assert second.returncode == 0, second.stderr
    assert "01_a: code unchanged, outputs from the cache" in second.stdout
    assert "02_b: executed (" in second.stdout                  # its code changed: executed again
    site1, site2 = work / "sites" / "1", work / "sites" / "2"
    assert executed(site2, "01_a") == executed(site1, "01_a")   # the cached output, same kernel pid
    assert executed(site2, "02_b") != executed(site1, "02_b") and "edited" in (site2 / "02_b.html").read_text()

    third = build("3", "--clean")
    assert third.returncode == 0, third.stderr
    assert "01_a: executed (" in third.stdout and "02_b: executed (" in third.stdout
    assert executed(work / "sites" / "3", "01_a") != executed(site1, "01_a")


TIMED = "# %%\nimport time\nt0 = time.time()\ntime.sleep({sleep})\nprint('{page} span', t0, time.time())\n"


def spans(site, pages):
    """Each page's (start, end) time, as its kernel printed them."""
    return [tuple(float(x) for x in re.search(page + r" span ([0-9.]+) ([0-9.]+)", (site / f"{page}.html").read_text())
                  .groups()) for page in pages]


# each tutorial marks that it runs, then waits (up to `wait` s) until the other one does too
MEET = ("# %%\nimport pathlib, time\nmine, theirs = pathlib.Path({mine!r}), pathlib.Path({theirs!r})\n"
        "mine.touch()\nend = time.time() + {wait}\nwhile not theirs.exists() and time.time() < end:\n"
        "    time.sleep(0.05)\nprint('{page} saw the other one running:', theirs.exists())\n")


@pytest.mark.parametrize("jobs", [2, 1])
def test_docs_build_executes_tutorials_side_by_side(tmp_path, jobs):
    """With --jobs 2 the tutorials' kernels run at the same time: each one waits (up to 25 s, within
    myst-nb's 30-s cell timeout) until the other has started, and both see the other. With --jobs 1
    they run one after another: the first waits 3 s in vain. A rendezvous, not timed spans that a
    slow machine could keep apart. Either way each page shows its own kernel's output."""
    needs_docs_extra()
    src, meet = tiny_site(tmp_path), tmp_path / "meet"
    meet.mkdir()
    for name, other in (("01_a", "02_b"), ("02_b", "01_a")):          # different code: cached apart
        (src / f"{name}.py").write_text(MEET.format(mine=str(meet / name), theirs=str(meet / other), page=name,
                                                    wait=25 if jobs == 2 else 3))
    done = refnet_cli("docs", "--source", str(src), "--out", "site", "--cache", "cache", "--jobs", str(jobs),
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"executing 2 tutorials, up to {jobs} at a time: 01_a, 02_b ..." in done.stdout
    assert "failed" not in done.stdout and "started" not in done.stdout, done.stdout   # none timed out, re-run
    saw = {page: re.search(page + r" saw the other one running: (True|False)",
                           (tmp_path / "site" / f"{page}.html").read_text()).group(1) for page in ("01_a", "02_b")}
    assert saw == ({"01_a": "True", "02_b": "True"} if jobs == 2 else {"01_a": "False", "02_b": "True"}), saw


def test_docs_build_starts_the_longest_tutorial_first_once_timed(tmp_path):
    """The first build records each tutorial's time next to the cache; a --clean build then starts
    the one that took longest first (02_b here, though 01_a comes first by name), and a build
    without those times (a missing or unreadable file) keeps the name order."""
    needs_docs_extra()
    import refnet.docs
    src = tiny_site(tmp_path)
    (src / "01_a.py").write_text(TIMED.format(page="01_a", sleep=0))
    (src / "02_b.py").write_text(TIMED.format(page="02_b", sleep=3))
    build = lambda: refnet_cli("docs", "--source", str(src), "--out", "site", "--cache", "cache", "--clean",
                               "--jobs", "1", cwd=tmp_path)
    first = build()
    assert first.returncode == 0, first.stderr
    assert "executing 2 tutorials, up to 1 at a time: 01_a, 02_b ..." in first.stdout
    seconds = json.loads((tmp_path / "cache" / refnet.docs.SECONDS).read_text())
    assert seconds["02_b"] > seconds["01_a"] and seconds["02_b"] >= 3.0, seconds
    second = build()
    assert second.returncode == 0, second.stderr
    assert ("executing 2 tutorials, up to 1 at a time, longest first (the last build's times): 02_b, 01_a ..."
            in second.stdout)
    (a0, a1), (b0, b1) = spans(tmp_path / "site", ("01_a", "02_b"))
    assert b1 <= a0, (a0, a1, b0, b1)                            # 02_b ran, and ended, before 01_a began
    (tmp_path / "cache" / refnet.docs.SECONDS).write_text("not json")
    third = build()
    assert third.returncode == 0, third.stderr
    assert "executing 2 tutorials, up to 1 at a time: 01_a, 02_b ..." in third.stdout


BROKEN = {"cell error": ("raise ValueError('tutorial b is broken')", "ExecutionError: {path}"),
          "kernel dies": ("import os\nos._exit(3)", "DeadKernelError: Kernel died")}


@pytest.mark.parametrize("broken", BROKEN)
def test_docs_failing_tutorial_fails_the_build_with_its_error(tmp_path, broken):
    """A tutorial that raises, or whose kernel dies, while the tutorials run side by side is not
    cached: myst-nb executes it again in its turn and the build fails with its error in one line
    (nb_execution_raise_on_error; no traceback of the build's threads), the other page cached."""
    needs_docs_extra()
    src = tiny_site(tmp_path)
    code, error = BROKEN[broken]
    (src / "02_b.py").write_text(f"# %%\n{code}\n")
    done = refnet_cli("docs", "--source", str(src), "--out", "site", "--cache", "cache", cwd=tmp_path)
    assert done.returncode == 1
    assert "02_b: failed; executed again in its turn to report the error" in done.stdout
    assert "01_a: rendered (" in done.stdout and "Traceback" not in done.stderr
    assert done.stderr.rstrip().endswith("refnet docs: the build failed: " + error.format(path=src / "02_b.py"))
    (src / "02_b.py").write_text(CELL.format(text="b"))
    again = refnet_cli("docs", "--source", str(src), "--out", "site", "--cache", "cache", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "executing 1 tutorial, up to 1 at a time: 02_b ..." in again.stdout   # 01_a: from the cache


@pytest.mark.parametrize("jobs, shown", [("0", "0"), ("-2", "-2"), ("x", "'x'"), ("1.5", "'1.5'")])
def test_docs_jobs_must_be_positive(tmp_path, stub, jobs, shown):
    done = refnet_cli("docs", "--source", stub, "--out", "site", "--jobs", jobs, cwd=tmp_path)
    one_line_error(done, f"refnet docs: --jobs must be a positive integer (tutorials executed at once), got {shown}")
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("jobs", [0, 1.5, True, "2"])
def test_build_jobs_must_be_a_positive_int(tmp_path, jobs):
    import refnet.docs
    with pytest.raises(ValueError, match=r"^jobs must be a positive integer .*, got "):
        refnet.docs.build(tmp_path / "site", jobs=jobs)
    assert not (tmp_path / "site").exists()


def test_cache_key_follows_refnet_and_refnet_fast(tmp_path, monkeypatch):
    """jupyter-cache hashes only a tutorial's code cells: the cache folder is keyed by what else
    its outputs depend on, so changing refnet or REFNET_FAST executes the tutorials again."""
    import refnet.docs
    fake = tmp_path / "refnet"
    fake.mkdir()
    (fake / "docs.py").write_text("x = 1\n")
    monkeypatch.setattr(refnet.docs, "__file__", str(fake / "docs.py"))
    monkeypatch.delenv("REFNET_FAST", raising=False)
    key = refnet.docs._fingerprint()
    assert key == refnet.docs._fingerprint()
    (fake / "data.py").write_text("")                          # a new file
    assert refnet.docs._fingerprint() != key
    key = refnet.docs._fingerprint()
    (fake / "docs.py").write_text("x = 2\n")                   # an edited file
    assert refnet.docs._fingerprint() != key
    key = refnet.docs._fingerprint()
    monkeypatch.setenv("REFNET_FAST", "1")
    assert refnet.docs._fingerprint() != key
    key = refnet.docs._fingerprint(tmp_path)                   # a site's conf.py (the kernels' figure format)
    (tmp_path / "conf.py").write_text("x = 1\n")
    assert refnet.docs._fingerprint(tmp_path) != key
