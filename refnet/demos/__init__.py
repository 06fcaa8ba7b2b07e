"""Sections of ``python -m refnet demo``; each is a function ``run(out, args)``
that prints a compact table to ``out`` in a few seconds."""
