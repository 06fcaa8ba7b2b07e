"""The README works as pasted.

Every ```python block of README.md runs on its own in a fresh interpreter (a
temporary working folder, PYTHONPATH the checkout, warnings as errors), as a
reader who copies one block would run it: no names from an earlier block, no
fragments. A block that ends with ``# ...`` comment lines after its last
statement shows what it prints; the test compares that with what it printed.
The README's set-up commands come first, and its test command is the one CI
(.ci/run) runs, verbatim.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

DEMO_COMMAND = "pip install -e . && python -m refnet demo"
TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest'


def fenced_blocks(text):
    """[(language, body)] of every fenced code block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


PYTHON_BLOCKS = [body for lang, body in fenced_blocks(README) if lang in ("python", "py")]


def shown_output(block):
    """The ``# ...`` lines after a block's last statement: what the README says it prints."""
    lines = block.rstrip("\n").split("\n")
    shown = []
    while lines and lines[-1].startswith("# "):
        shown.insert(0, lines.pop()[2:])
    return shown


def _rounding_level(text):
    """Numbers at the rounding level (|x| < 1e-10, written like 6e-16) vary with the BLAS: mask them."""
    return re.sub(r"\b\d(\.\d+)?e-(1\d|[2-9]\d)\b", "<rounding>", text)


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 3, "the README's tour should have its python blocks"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))])
def test_python_block_runs_as_pasted(block, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-W", "error", "-c", block], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"README block failed as pasted:\n{block}\n--- stderr:\n{done.stderr}"
    shown = shown_output(block)
    if shown:
        printed = done.stdout.rstrip("\n").split("\n")
        assert [_rounding_level(s) for s in printed] == [_rounding_level(s) for s in shown], (
            f"the README shows\n{chr(10).join(shown)}\nbut the block printed\n{done.stdout}")


def test_setup_commands_come_first_and_match_ci():
    blocks = fenced_blocks(README)
    lang, first = blocks[0]
    assert lang == "bash", "the first code block of the README must be the set-up commands"
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands[:2] == [DEMO_COMMAND, TEST_COMMAND], commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in [line.strip() for line in ci], ".ci/run must run the README's test command verbatim"


def test_readme_has_no_project_jargon():
    for pattern in (r"\bissue\s*#?\d", r"seed question", r"seed-\d", r"this round"):
        assert not re.search(pattern, README, re.I), pattern


def test_readme_stays_a_front_door():
    assert len(README.splitlines()) <= 180, "move details to the site's pages"
