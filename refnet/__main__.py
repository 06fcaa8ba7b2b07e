"""Command line: ``python -m refnet demo [--plot DIR] [--section NAME]``, ``python -m refnet docs --out DIR``,
``python -m refnet conformance run --port MODULE:ATTR | export DIR | check DIR``."""
from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys

SECTIONS = ["backprop", "momentum", "frozen"]   # refnet/demos/<name>.py, in this order
PLOT_SUFFIXES = {".png", ".pdf", ".svg", ".jpg", ".jpeg"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demos on built-in data (seconds)")
    demo.add_argument("--section", choices=SECTIONS, action="append",
                      help="run only this section (repeatable); default: all")
    demo.add_argument("--plot", metavar="DIR", help="also save each section's plot as DIR/<section>.png "
                      "(DIR is created if missing; needs matplotlib), e.g. --plot plots gives plots/frozen.png")
    docs = sub.add_parser("docs", help="build the documentation site (needs the docs extra)")
    docs.add_argument("--out", required=True, metavar="DIR",
                      help="folder for the HTML site (DIR/index.html), created if missing; outside the sources")
    docs.add_argument("--strict", action="store_true", help="treat every Sphinx warning as an error")
    docs.add_argument("--source", metavar="DIR", help="site sources (default: the checkout's tutorials/)")
    docs.add_argument("--cache", metavar="DIR", help="cache of executed tutorials, keyed by their code and "
                      "refnet's (default: ~/.cache/refnet/jupyter-cache), created if missing")
    docs.add_argument("--clean", action="store_true",
                      help="empty this refnet's cache first, so every tutorial is executed again")
    docs.add_argument("--jobs", metavar="N", help="tutorials executed at once, each in its own "
                      "kernel (default: one per CPU; 1: one after another)")
    from refnet.conformance import cli as conformance
    conformance.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "conformance":
        return conformance.main(args)
    if args.command == "docs":
        from refnet import docs as site
        return site.main(args)
    if args.plot is not None:
        from refnet.docs import writable_folder
        try:
            if pathlib.Path(args.plot).suffix.lower() in PLOT_SUFFIXES and not os.path.isdir(args.plot):
                raise ValueError(f"--plot takes a folder, and {args.plot!r} looks like a file name: each "
                                 f"section's plot is saved as FOLDER/<section>.png (e.g. --plot plots)")
            writable_folder(args.plot, "--plot")
        except ValueError as e:
            print(f"refnet demo: {e}", file=sys.stderr)
            return 2
    out = sys.stdout
    for name in args.section or SECTIONS:
        section = importlib.import_module(f"refnet.demos.{name}")
        out.write(f"\n== {section.TITLE} ==\n")
        section.run(out, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
