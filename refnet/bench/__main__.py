"""``python -m refnet.bench``: parse the flags, run the selected case groups, write the report.

``--_child NAME`` (internal) runs one memory case of ``cases.CHILD_CASES`` in this fresh process.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time
from pathlib import Path

import refnet.bench
from refnet.bench.cases import CASES, CHILD_CASES, GROUPS
from refnet.bench.harness import child_main, import_peer, limit_blas_threads, machine_info, set_torch_threads
from refnet.bench.report import write


EPILOG = """\
How to read the report: every case times refnet and its peers in the same
process, in interleaved rounds; a time is the median over rounds and its
spread is the interquartile range over the median. A case whose spread
exceeds 30% is measured again (up to twice more) and the note says so; one
that stays above 30% is marked NOISY. The header records the CPU, the BLAS
and its thread count, and the load average at the start and the end: numbers
taken while other programs ran are not comparable with a quiet run."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refnet.bench", description=refnet.bench.__doc__.split("\n\n")[0],
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="few repeats, and the 10-million-parameter projection at a smaller, labelled size "
                             "(about a minute)")
    parser.add_argument("--out", default="bench-results", help="output folder (default: bench-results/)")
    parser.add_argument("--cases", nargs="*", default=None, metavar="NAME",
                        help=f"case groups or prefixes/globs (default: all): {', '.join(GROUPS)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per case (default 15; quick 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and torch threads (default: the BLAS's own count); 1 is steadier on a busy machine")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed time (default); cpu: CPU time of this process, steadier while other "
                             "programs run (use with --threads 1)")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        return child_main(CHILD_CASES[args._child], args._child, args.quick)

    cfg = {"quick": args.quick, "clock": args.clock,
           "repeats": args.repeats or (3 if args.quick else 15),
           "repeats_big": 1 if args.quick else max(3, (args.repeats or 15) // 3),
           "min_sample": 0.002 if args.quick else 0.02,
           "dense_timeout": 120 if args.quick else 300}
    selected = []
    for pat in (args.cases or GROUPS):
        hits = [g for g in GROUPS if fnmatch.fnmatch(g, pat) or g.startswith(pat)]
        if not hits:
            parser.error(f"unknown case {pat!r}; choose from {', '.join(GROUPS)}")
        selected += [g for g in hits if g not in selected]

    if args.threads and not limit_blas_threads(args.threads) and os.environ.get("_REFNET_BENCH_REEXEC") is None:
        # no threadpoolctl: NumPy's BLAS reads its thread count once, at load, so start again with it set
        os.environ["_REFNET_BENCH_REEXEC"] = "1"
        os.execv(sys.executable, [sys.executable, "-m", "refnet.bench", *(sys.argv[1:] if argv is None else argv)])
    info = machine_info()
    set_torch_threads(import_peer("torch"), info)
    print(f"refnet bench{' --quick' if args.quick else ''}: {info['cpu']}, {info['cores']} cores, "
          f"BLAS {info['blas']} x{info['blas_threads']}, torch {info['torch']} x{info['torch_threads']}", flush=True)
    rows, t0 = [], time.perf_counter()
    for g in selected:
        print(f"[{g}]", flush=True)
        rows += CASES[g](cfg, info)
    info["elapsed_s"] = round(time.perf_counter() - t0, 1)
    info["load_avg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    md = write(args.out, info, rows, cfg)
    print("\n" + md)
    out = Path(args.out)
    print(f"wrote {out / 'bench.md'} and {out / 'bench.json'} in {info['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
