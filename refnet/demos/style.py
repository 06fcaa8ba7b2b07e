"""One colour per optimizer or method, shared by every figure of the tutorials.

A colour names the same thing on every page: SGD is always gray, standard momentum
always blue, incoming-averaged momentum always red. Other distinctions (momentum
values, frozen vs trained outputs) use line styles and markers, never colours.
Needs no matplotlib: the values are matplotlib colour names.
"""
from __future__ import annotations

COLORS = {
    # optimizers (tutorial 02)
    "SGD": "tab:gray",
    "SGD, lr/(1-mu)": "black",
    "Momentum": "tab:blue",
    "AveragedMomentum": "tab:red",
    "answer's variant (out)": "tab:orange",
    # frozen-output methods (tutorials 01 and 04)
    "masked, all layers": "tab:olive",
    "masked, head only": "tab:brown",
    "projected": "tab:purple",
    "projected + retraction": "tab:green",
    "not frozen": "tab:gray",
}
ALIASES = {"AveragedMomentum (in)": "AveragedMomentum", "plain SGD": "SGD"}
MU_STYLES = {0.5: ":", 0.9: "-", 0.99: "--"}     # line style per momentum value (sweeps)


def color(name: str) -> str:
    """The colour of optimizer or method ``name``; ValueError naming it if it has none."""
    key = ALIASES.get(name, name)
    if key not in COLORS:
        raise ValueError(f"name: no colour for {name!r}; expected one of {sorted(COLORS)}")
    return COLORS[key]
