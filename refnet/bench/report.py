"""The report: result rows, time formatting, and the Markdown table with the machine header."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .harness import MAX_SPREAD, RETRIES


def fmt_time(s) -> str:
    """Seconds as "1.23 s", "4.56 ms" or "7.8 us"; "n/a" for None or NaN."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "n/a"
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def row(case, group, refnet_s=None, peer=None, peer_s=None, ratio=None, target=None,
        op="<=", value=None, value_str=None, note="", spread=None, status=None, timing=None, **extra):
    """One result row. The target compares ``value`` (default: the ratio) with ``op``.

    status: "met"/"missed" when a target and a value exist, "info" without a
    target, "n/a" when the peer is missing, or as given (e.g. "skipped").
    timing: the ``harness.interleaved`` result the row was computed from; the note
    then says when the case was measured again for its spread, and when it stayed noisy.
    """
    if timing:
        attempts = max(v.get("attempts", 1) for v in timing.values())
        worst = max(v["spread"] for v in timing.values())
        extra.update(attempts=attempts, noisy=any(v.get("noisy") for v in timing.values()))
        if extra["noisy"]:
            note += f"{'; ' if note else ''}NOISY: spread {worst:.0%} > {MAX_SPREAD:.0%} after {attempts} measurements"
        elif attempts > 1:
            note += f"{'; ' if note else ''}measured {attempts} times (spread > {MAX_SPREAD:.0%} before)"
    if ratio is None and refnet_s is not None and peer_s:
        ratio = refnet_s / peer_s
    if value is None:
        value = ratio
    if status is None:
        if target is None:
            status = "info"
        elif value is None:
            status = "n/a"
        else:
            status = "met" if (value <= target if op == "<=" else value >= target if op == ">=" else value < target) else "missed"
    return {"case": case, "group": group, "refnet_s": refnet_s, "peer": peer, "peer_s": peer_s,
            "ratio": ratio, "value": value, "value_str": value_str, "target": target, "op": op,
            "status": status, "spread": spread, "note": note, **extra}


def gb(b):
    """Bytes as "1.23 GB" (GiB)."""
    return f"{b / 2**30:.2f} GB"


def _load(v):
    """Load averages as "0.9 / 0.6 / 0.3"."""
    return "?" if not v else " / ".join(f"{x:.1f}" for x in v)


def markdown(info, rows, cfg) -> str:
    """The Markdown report: a machine header and one table row per result."""
    head = [f"refnet benchmark, {info['date']}{' (--quick)' if cfg['quick'] else ''}",
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM, {info['platform']}; "
            f"load average (1, 5, 15 min) at start {_load(info['load_avg_1_5_15'])}, "
            f"at end {_load(info.get('load_avg_at_end'))}",
            f"Python {info['python']}, NumPy {info['numpy']} with {info['blas']}, BLAS threads {info['blas_threads']} "
            f"({info.get('blas_threads_from', '?')}); torch {info['torch']} (threads {info['torch_threads']}); "
            f"autograd {info['autograd']}",
            f"malloc: {info.get('malloc', '?')}; a minor page fault (the first write to a 4 KiB page of new "
            f"memory) costs " + (f"{info['page_fault_us']} us" if info.get("page_fault_us") else "? (not measured)"),
            f"Repeats {cfg['repeats']} (large: {cfg['repeats_big']}), samples >= {cfg['min_sample'] * 1e3:.0f} ms, "
            f"interleaved; times ({cfg.get('clock', 'wall')} clock) are medians per call; ratio = refnet / peer (lower is better); a case with a "
            f"spread (IQR / median) above {MAX_SPREAD:.0%} is measured again, up to {RETRIES} more times "
            f"(noted per row; NOISY if it stayed above)",
            "",
            "| case | refnet | peer | peer time | ratio / value | target | status | notes |",
            "|---|---|---|---|---|---|---|---|"]
    lines = []
    for r in rows:
        if r["value_str"] is not None:
            val = r["value_str"]
        elif r["ratio"] is not None:
            val = f"{r['ratio']:.2f}"
        else:
            val = ""
        tgt = "" if r["target"] is None else f"{r['op']} {r['target']:g}"
        lines.append(f"| {r['case']} | {fmt_time(r['refnet_s']) if r['refnet_s'] is not None else ''} | "
                     f"{r['peer'] or ''} | {fmt_time(r['peer_s']) if r['peer'] else ''} | {val} | {tgt} | "
                     f"{r['status']} | {r['note']} |")
    return "\n".join(head + lines) + "\n"


def write(out, info, rows, cfg) -> str:
    """Write ``out/bench.md`` (the Markdown report) and ``out/bench.json`` (every number); return the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(info, rows, cfg)
    (out / "bench.md").write_text(md)
    (out / "bench.json").write_text(json.dumps({"machine": info, "config": cfg, "rows": rows}, indent=1))
    return md
