"""Smoke test of the benchmark suite: ``python -m refnet.bench --quick`` runs and
writes its report. No timing assertions: numbers on a CI machine mean nothing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from refnet.bench import GROUPS

ROOT = Path(__file__).resolve().parents[1]

# one representative case name per group (prefixes of the "case" column)
EXPECTED = [
    "train/tiny/float32 vs torch", "train/small/float64 vs numpy", "train/medium/float64 vs torch",
    "train/large/float64 vs numpy", "grad/tiny/float64 vs autograd", "grad/large/float64 vs autograd",
    "momentum/medium/float64 vs torch", "averaged_momentum/medium/float32 vs torch",
    "projection/small/float64 gram vs dense", "projection/small/float64 gram vs torch.func",
    "gram_large/1e6", "gram_large/1e7", "frozen/medium/float64 vs unprojected step",
    "flops/large/float32", "flops/large/float64", "memory/train/large/float64 refnet", "gpu",
]


def _run(tmp_path, env_extra, groups=GROUPS, flags=()):
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "refnet.bench", "--quick", "--out", str(tmp_path),
                        "--cases", *groups, *flags], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    md, js = tmp_path / "bench.md", tmp_path / "bench.json"
    assert md.is_file() and js.is_file()
    report = json.loads(js.read_text())
    cases = [r["case"] for r in report["rows"]]
    for name in (n for n in EXPECTED if n.split("/")[0] in groups):
        assert any(c.startswith(name) for c in cases), f"missing case {name!r} in {cases}"
        assert name in md.read_text()
    assert {r["group"] for r in report["rows"]} == set(groups)
    for key in ("date", "cpu", "cores", "ram_gb", "blas", "blas_threads", "platform"):
        assert key in report["machine"]
    for r in report["rows"]:
        assert r["status"] in ("met", "missed", "info", "n/a", "skipped", "error"), r
        assert r["status"] != "error", r
    return report


def test_bench_quick_with_peers(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("autograd")
    report = _run(tmp_path, {"REFNET_BENCH_NO_PEERS": "0"})
    torch_rows = [r for r in report["rows"] if r["case"].startswith("train/") and "torch" in r["case"]]
    assert torch_rows and all(r["peer_s"] is not None for r in torch_rows)


def test_bench_quick_without_peers(tmp_path):
    """Peers hidden (REFNET_BENCH_NO_PEERS=1): refnet columns still run, peer columns read n/a.
    Only the groups that have peer columns run here (the full --quick run is the test above);
    --threads and --repeats are honoured and recorded."""
    report = _run(tmp_path, {"REFNET_BENCH_NO_PEERS": "1"}, groups=["train", "grad", "momentum"],
                  flags=["--threads", "1", "--repeats", "2"])
    assert report["machine"]["blas_threads"] == 1 and report["config"]["repeats"] == 2
    assert report["machine"]["torch"] == "n/a"
    peer_rows = [r for r in report["rows"] if " vs torch" in r["case"] or " vs autograd" in r["case"]]
    assert peer_rows and all(r["status"] == "n/a" and r["refnet_s"] is not None for r in peer_rows)
