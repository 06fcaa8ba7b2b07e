"""Every tutorial runs end to end as a script, in its fast mode (REFNET_FAST=1).

A tutorial that imports an optional peer library (tutorial 03's JAX port) is
skipped, with the reason, where that library is missing, except under CI
(``CI`` set), whose .ci/run installs it: a skip there would hide a broken install.
"""
import ast
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
FITTED_IDS = {"00", "01", "02", "03", "04"}   # tutorials whose code and output fit 88 columns
OPTIONAL = {"jax", "torch"}          # peer libraries a tutorial may import (not in the [test] extra)


def _missing_peers(path):
    """Optional peer libraries that ``path`` imports and this environment lacks."""
    tree = ast.parse(path.read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    return sorted(m for m in mods & OPTIONAL if importlib.util.find_spec(m) is None)


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    missing = _missing_peers(path)
    if missing and not os.environ.get("CI"):
        pytest.skip(f"{path.name} imports {', '.join(missing)}, which is not installed "
                    f"(pip install -e \".[peers]\")")
    # the checkout under test comes first on the path (an installed refnet, if any, is not what is tested)
    path_ = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ, REFNET_FAST="1", MPLBACKEND="Agg", REFNET_OUT=str(tmp_path), PYTHONPATH=path_)
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    if path.name[:2] in FITTED_IDS:                  # printed output: unwrapped on the site
        long = [line for line in done.stdout.splitlines() if len(line) > 88]
        assert not long, f"{path.name} prints lines over 88 characters:\n" + \
            "\n".join(long)


def test_tutorials_exist():
    names = {p.stem for p in TUTORIALS}
    assert names, "no tutorials found"


def _code_lines(path):
    """(line number, text) of the code-cell lines of a py:percent tutorial."""
    in_markdown, out = False, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line
        elif not in_markdown:
            out.append((number, line))
    return out


FITTED = [p for p in TUTORIALS if p.name[:2] in FITTED_IDS]


@pytest.mark.parametrize("path", FITTED, ids=[p.stem for p in FITTED])
def test_code_cells_fit_88_columns(path):
    """The site shows code cells unwrapped: a longer line is clipped at 1280 px."""
    long = [f"{path.name}:{n}: {len(line)} chars" for n, line in _code_lines(path)
            if len(line) > 88]
    assert not long, "code lines over 88 characters:\n" + "\n".join(long)


def test_style_has_one_colour_per_name():
    from refnet.demos import style
    assert len(set(style.COLORS[k] for k in style.COLORS if k != "not frozen")) == \
        len(style.COLORS) - 1                # "not frozen" is plain SGD's gray on purpose
    assert style.color("AveragedMomentum (in)") == style.color("AveragedMomentum")
    with pytest.raises(ValueError, match="no colour for 'Adam'"):
        style.color("Adam")
