"""Command line: ``python -m refnet demo [--plot PREFIX] [--section NAME]``, ``python -m refnet docs --out DIR``,
``python -m refnet conformance run --port MODULE:ATTR | export DIR | check DIR``."""
from __future__ import annotations

import argparse
import importlib
import sys

SECTIONS = ["backprop", "momentum", "frozen"]   # refnet/demos/<name>.py, in this order


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demos on built-in data (seconds)")
    demo.add_argument("--section", choices=SECTIONS, action="append",
                      help="run only this section (repeatable); default: all")
    demo.add_argument("--plot", metavar="PATH", help="also save plots (needs matplotlib) as PATH<section>.png, e.g. --plot out/ gives out/frozen.png")
    docs = sub.add_parser("docs", help="build the documentation site (needs the docs extra)")
    docs.add_argument("--out", required=True, metavar="DIR", help="where the HTML site goes (DIR/index.html)")
    docs.add_argument("--strict", action="store_true", help="treat every Sphinx warning as an error")
    docs.add_argument("--source", metavar="DIR", help="site sources (default: the checkout's tutorials/)")
    from refnet.conformance import cli as conformance
    conformance.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "conformance":
        return conformance.main(args)
    if args.command == "docs":
        from refnet import docs as site
        return site.main(args)
    out = sys.stdout
    for name in args.section or SECTIONS:
        section = importlib.import_module(f"refnet.demos.{name}")
        out.write(f"\n== {section.TITLE} ==\n")
        section.run(out, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
