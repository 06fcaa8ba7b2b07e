"""Every tutorial runs end to end as a script, in its fast mode (REFNET_FAST=1)."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    # the checkout under test comes first on the path (an installed refnet, if any, is not what is tested)
    path_ = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ, REFNET_FAST="1", MPLBACKEND="Agg", REFNET_OUT=str(tmp_path), PYTHONPATH=path_)
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_tutorials_exist():
    names = {p.stem for p in TUTORIALS}
    assert names, "no tutorials found"
