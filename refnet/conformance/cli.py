"""``python -m refnet conformance run|export|check``: the command line of the verification kit."""
from __future__ import annotations

import pathlib
import sys

from .checks import DEFAULT_TIMEOUT


def add_parser(sub):
    """Add the ``conformance`` subcommand (with run, export, check) to an argparse subparsers object."""
    conf = sub.add_parser("conformance", help="verify your own implementation against refnet (the verification kit)")
    what = conf.add_subparsers(dest="conformance_command", required=True)
    run = what.add_parser("run", help="compare a port (MODULE:ATTR) with refnet, quantity by quantity")
    run.add_argument("--port", required=True, metavar="MODULE:ATTR",
                     help="the port object (or class, instantiated without arguments); MODULE may be a .py path")
    run.add_argument("--profile", choices=["quick", "deep", "core"], default="quick",
                     help="quick (default): core cases + 25 hypothesis examples per quantity; deep: 1000; "
                          "core: the core cases only")
    from .checks import QUANTITIES
    run.add_argument("--quantity", action="append", metavar="NAME", choices=list(QUANTITIES),
                     help=f"check only this quantity (repeatable; one of {', '.join(QUANTITIES)}); "
                          f"default: every one the port implements")
    run.add_argument("--case", metavar="JSON", help="replay one case (as printed in a failure report)")
    run.add_argument("--save-failures", metavar="DIR", help="write the failing (shrunk) cases as golden files")
    run.add_argument("--timeout", metavar="SECONDS", type=str, default=str(DEFAULT_TIMEOUT),
                     help=f"the longest one port call may take (default {DEFAULT_TIMEOUT:g}; 0: no limit); a call "
                          f"that takes longer is a failure, abandoned in a background thread")
    run.add_argument("--strict", action="store_true",
                     help="what the kit cannot check (a layout nothing the port computes shows) is a failure")
    run.add_argument("--all-failures", action="store_true",
                     help="list every distinct failure (and run quantities whose dependencies failed)")
    export = what.add_parser("export", help="write golden files (manifest.json, per-case JSON, raw float64 .bin)")
    export.add_argument("dir", metavar="DIR")
    check = what.add_parser("check", help="compare a candidate's result.<name>.bin files with golden files")
    check.add_argument("dir", metavar="DIR")
    check.add_argument("--results", metavar="RESULTS_DIR", help="where the candidate's <case>/result.*.bin are "
                                                                  "(default: DIR itself)")
    return conf


def main(args, out=sys.stdout) -> int:
    """Run the parsed ``conformance`` subcommand; returns the exit code (0: everything that ran passed,
    1: something failed, 2: what was given cannot be used: a bad --port, --case or golden folder)."""
    from . import golden
    from .cases import Case
    from .runner import load_port, run
    try:                                                     # the user's arguments: one line, no traceback
        if args.conformance_command == "export":
            m = golden.export(args.dir)
            out.write(f"wrote {len(m['cases'])} cases ({len(m['skipped'])} skipped) to {args.dir}/manifest.json\n")
            return 0
        if args.conformance_command == "check":
            ok, lines = golden.check(args.dir, args.results)
            out.write("\n".join(lines) + ("\nOK\n" if ok else "\nFAILED\n"))
            return 0 if ok else 1
        what = "--timeout"
        timeout = _timeout(args.timeout)
        what = "--save-failures"
        if args.save_failures is not None and pathlib.Path(args.save_failures).exists() \
                and not pathlib.Path(args.save_failures).is_dir():
            raise ValueError(f"{args.save_failures!r} is a file; expected a folder (new or existing)")
        what = "--case"
        case = None if args.case is None else Case.from_json(args.case)
        what = "--port"
        port = load_port(args.port)
    except (ValueError, TypeError, OSError) as e:
        where = what + ": " if args.conformance_command == "run" else ""
        message = " ".join(str(e).split())                                  # one line
        sys.stderr.write(f"refnet conformance {args.conformance_command}: error: {where}{message}\n")
        return 2
    report = run(port, profile=args.profile, quantities=args.quantity, case=case, timeout=timeout,
                 strict=args.strict, all_failures=args.all_failures,
                 replay=f"python -m refnet conformance run --port {args.port}")
    out.write(str(report) + "\n")
    if args.save_failures and not report.ok:
        written = golden.save_failure(args.save_failures, report)
        out.write(f"wrote {len(written)} failing case(s) as golden files to {args.save_failures}\n")
    return 0 if report.ok else 1


def _timeout(text):
    """--timeout: seconds > 0, or 0 for no limit (None)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds (0: no limit), got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"expected a number of seconds >= 0 (0: no limit), got {text!r}")
    return None if value == 0 else value
