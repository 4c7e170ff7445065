"""Outputs of a run: results.json, results.md, speedup.png, roofline.png (matplotlib, Agg backend).

JSON: ``{"meta", "ceilings", "rows", "skipped", "goals"}``. Every row has ``op``, ``kind``, ``shape``,
``dtype``, ``impl``, ``ms`` (median, flaggems), ``torch_ms``, ``speedup`` (torch_ms / ms),
``speedup_vs_flag_gems`` (None unless FlagGems is importable), ``tflops`` / ``gbps`` (None where the op has
no FLOP or byte count), ``roofline_frac`` (achieved / attainable: min(compute ceiling, arithmetic intensity ×
bandwidth ceiling), both measured in the same run), ``device`` and ``versions``, plus ``measures`` (what
the row times), spreads, ``kernel_ms`` / ``dispatch_us``, ``overhead_us`` (overhead rows) and the peak-memory
fields where measured.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

# issue 6's CPU goals: (ops, phase filter, minimum speedup, max peak-memory ratio)
GOALS = [
    ("fp8_gemm", "decode", 1.5, 1 / 3),
    ("fp4_gemm", "decode", 1.5, 1 / 3),
    ("_grouped_mm", None, 1.0, None),
    ("moe_gate", None, 3.0, None),
    ("sparse_attn", None, 3.0, None),
]


def goals(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Issue 6's CPU goals checked against the rows of a CPU run (empty on other devices)."""
    if result["meta"]["device"].get("type") != "cpu":
        return []
    out = []
    for op, phase, min_speed, max_mem in GOALS:
        rows = [r for r in result["rows"] if r["op"] == op and r["kind"] != "overhead" and r.get("speedup")
                and (phase is None or r.get("phase") == phase)]
        clean = [r for r in rows if not r.get("contended")]
        excluded = len(rows) - len(clean)
        rows = clean or rows                      # judge on uncontended rows when there are any
        if not rows:
            continue
        worst = min(rows, key=lambda r: r["speedup"])
        g = {"op": op, "phase": phase or "all", "rows": len(rows), "goal_speedup": min_speed,
             "min_speedup": worst["speedup"], "min_at": worst["shape"],
             "max_speedup": max(r["speedup"] for r in rows),
             "rows_below": sum(r["speedup"] < min_speed for r in rows), "contended_excluded": excluded if clean else 0}
        ok = g["rows_below"] == 0
        if not ok:
            g["shortfall"] = f"worst row needs {min_speed / worst['speedup']:.2f}x more speed"
        if max_mem is not None:
            ratios = [r["peak_mem_bytes"] / r["torch_peak_mem_bytes"] for r in rows
                      if r.get("peak_mem_bytes") is not None and r.get("torch_peak_mem_bytes")]
            if ratios:
                g.update(goal_mem_ratio=max_mem, max_mem_ratio=max(ratios))
                ok = ok and max(ratios) <= max_mem
        g["met"] = ok
        out.append(g)
    return out


def write_json(result: Dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=str)


def _f(v, fmt="{:.3g}", none="–"):
    if v is None:
        return none
    return fmt.format(v)


def _mib(v):
    return "–" if v is None else f"{v / 2**20:.2f}"


def to_markdown(result: Dict[str, Any], command: Optional[str] = None) -> str:
    m = result["meta"]
    d = m["device"]
    v = m["versions"]
    L = []
    L.append(f"# flaggems benchmarks — {d.get('name', d['type'])}")
    L.append("")
    desc = f"- device: {d.get('name')} ({d['type']}, vendor `{d['vendor']}`"
    if d["type"] == "cpu":
        desc += f", {d.get('cores')} cores, {d.get('threads')} torch threads, torch ISA {d.get('torch_isa')}, " \
                f"flaggems._C ISA {d.get('cpp_isa')}, L3 {d.get('l3', '?')}"
    desc += ")"
    L.append(desc)
    L.append(f"- versions: flaggems {v['flaggems']} (git {v.get('git')}), torch {v['torch']}, triton {v['triton']}, "
             f"python {v['python']}, flag_gems {v.get('flag_gems') or 'not importable'}")
    if command:
        L.append(f"- command: `{command}`")
    L.append(f"- {m['time']}, wall {m['wall_s']} s, timer: {m['timer']}; "
             f"{'quick' if m['quick'] else 'full'} shape set")
    if m.get("peak_memory_method"):
        L.append(f"- peak memory: {m['peak_memory_method']}")
    c = result["ceilings"]
    parts = [f"bandwidth {c['bandwidth']['gbps']:.1f} GB/s ({c['bandwidth']['what']})"] if "bandwidth" in c else []
    parts += [f"{k} {x['tflops'] * 1e3:.0f} GFLOP/s ({x['what']})" for k, x in c.items() if k != "bandwidth"]
    L.append("- ceilings measured in this run: " + "; ".join(parts))
    if m.get("contended_rows"):
        L.append(f"- ⚠ {m['contended_rows']} row(s) were timed while other processes used more than "
                 f"{m['contention_threshold_cores']} cores (after retries); they are marked ⚠ and their numbers "
                 f"are unreliable (an OpenMP region waits for its slowest thread)")
    L.append("")
    L.append("Columns: `ms` = median latency of the flaggems call; `torch ms` = the baseline in the same run; "
             "`speedup` = torch ms / ms; `±%` = inter-quartile range of the samples in % of the median; "
             "host overhead rows: `overhead µs` = flaggems call − reference (see the table); "
             "`roofline` = achieved / attainable (min(compute ceiling, intensity × bandwidth)); peak MiB = "
             "peak memory of one call (flaggems / torch).")
    rows = result["rows"]
    for kind, title in (("deepseek", "DeepSeek-V4 custom ops"), ("moe", "MoE expert GEMMs"),
                        ("elementwise", "Elementwise"), ("reduction", "Reductions")):
        rs = [r for r in rows if r["kind"] == kind]
        if not rs:
            continue
        L += ["", f"## {title}", ""]
        baselines = sorted({(r["op"], r["baseline"]) for r in rs if r.get("baseline")})
        for op, b in baselines:
            L.append(f"- `{op}` baseline: {b}")
        notes = sorted({(r["op"], r["note"]) for r in rs if r.get("note")})
        for op, n in notes:
            L.append(f"- `{op}` note: {n}")
        L.append("")
        extra = any(r.get("bf16_linear_ms") for r in rs)
        mem = any(r.get("peak_mem_bytes") is not None for r in rs)
        hdr = ["op", "shape", "dtype", "impl", "ms", "±%", "torch ms", "±%", "speedup"]
        if any(r.get("flag_gems_ms") for r in rs):
            hdr += ["FlagGems ms", "vs FlagGems"]
        if extra:
            hdr += ["bf16 linear ms"]
        disp = any(r.get("dispatch_us") is not None for r in rs)
        hdr += (["disp µs"] if disp else []) + ["TFLOP/s", "GB/s", "roofline"]
        if mem:
            hdr += ["peak MiB", "torch peak MiB"]
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "|".join("---" if i < 4 else "---:" for i in range(len(hdr))) + "|")
        for r in rs:
            cells = [r["op"] + (" ⚠" if r.get("contended") else ""), r["shape"], r["dtype"], r["impl"], _f(r["ms"], "{:.4g}"), _f(r.get("ms_iqr_pct"), "{:.0f}"),
                     _f(r.get("torch_ms"), "{:.4g}"), _f(r.get("torch_iqr_pct"), "{:.0f}"),
                     _f(r.get("speedup"), "{:.2f}x")]
            if "FlagGems ms" in hdr:
                cells += [_f(r.get("flag_gems_ms"), "{:.4g}"), _f(r.get("speedup_vs_flag_gems"), "{:.2f}x")]
            if extra:
                cells += [_f(r.get("bf16_linear_ms"), "{:.4g}")]
            cells += ([_f(r.get("dispatch_us"), "{:.1f}")] if disp else []) + [
                      _f(r.get("tflops"), "{:.3g}"), _f(r.get("gbps"), "{:.3g}"),
                      _f(r.get("roofline_frac") and 100 * r["roofline_frac"], "{:.0f}%")
                      + (f" ({r['bound'][0]})" if r.get("bound") else "")]
            if mem:
                cells += [_mib(r.get("peak_mem_bytes")), _mib(r.get("torch_peak_mem_bytes"))]
            L.append("| " + " | ".join(str(x) for x in cells) + " |")
    ov = [r for r in rows if r["kind"] == "overhead"]
    if ov:
        L += ["", "## Host overhead per call (tiny inputs)", ""]
        L.append("| op | input | served by | flaggems µs | reference | reference µs | overhead µs | what |")
        L.append("|---|---|---|---:|---|---:|---:|---|")
        for r in ov:
            ref_name = "implementation direct" if r.get("kernel_ms") is not None else (
                "flaggems disabled" if r["impl"] == "fallback" else "torch native")
            ref = r.get("kernel_ms") if r.get("kernel_ms") is not None else r.get("torch_ms")
            L.append(f"| {r['op']}{' ⚠' if r.get('contended') else ''} | {r['shape']} {r['dtype']} | {r['impl']} | {r['ms'] * 1e3:.2f} | {ref_name} | "
                     f"{_f(ref and ref * 1e3, '{:.2f}')} | {_f(r.get('overhead_us'), '{:.2f}')} | {r['measures']} |")
    gs = result.get("goals") or []
    if gs:
        L += ["", "## Issue 6 goals (CPU)", ""]
        L.append("| op | rows | goal | min speedup (at) | max speedup | peak-memory ratio (goal) | met |")
        L.append("|---|---:|---|---|---:|---|---|")
        for g in gs:
            memtxt = (f"{g['max_mem_ratio']:.4f} (≤ {g['goal_mem_ratio']:.2f})" if "max_mem_ratio" in g else "–")
            L.append(f"| {g['op']} ({g['phase']}) | {g['rows']} | ≥ {g['goal_speedup']}x | {g['min_speedup']:.2f}x "
                     f"({g['min_at']}) | {g['max_speedup']:.2f}x | {memtxt} | "
                     f"{'yes' if g['met'] else 'no: ' + g.get('shortfall', 'memory')} |")
    sk = result["skipped"]
    if sk:
        L += ["", "## Not timed", ""]
        by = {}
        for s in sk:
            by.setdefault((s["reason"]), []).append(s)
        for reason, ss in by.items():
            ops = sorted({s["op"] for s in ss})
            L.append(f"- {len(ss)} case(s) of {', '.join(f'`{o}`' for o in ops)}: {reason}")
    return "\n".join(L) + "\n"


def plots(result: Dict[str, Any], outdir: str) -> List[str]:
    """speedup.png (per row, grouped by op, log scale) and roofline.png; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = [r for r in result["rows"] if r.get("speedup") and r["kind"] != "overhead"]
    dev = result["meta"]["device"].get("name", "")
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(rows) + 2), 4.5))
    if rows:
        ops = list(dict.fromkeys(r["op"] for r in rows))
        cmap = plt.get_cmap("tab10")
        xs = range(len(rows))
        ax.bar(xs, [r["speedup"] for r in rows], color=[cmap(ops.index(r["op"]) % 10) for r in rows])
        ax.set_yscale("log")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{r['op']} {r.get('tokens') or ''}".strip() for r in rows], rotation=90, fontsize=6)
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i % 10)) for i in range(len(ops))]
        ax.legend(handles, ops, fontsize=7, ncol=2)
    else:
        ax.text(0.5, 0.5, "no timed rows with a torch baseline", ha="center", transform=ax.transAxes)
    ax.set_ylabel("speedup vs torch (log)")
    ax.set_title(f"flaggems vs torch — {dev}", fontsize=9)
    fig.tight_layout()
    p = os.path.join(outdir, "speedup.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)

    c = result["ceilings"]
    fig, ax = plt.subplots(figsize=(7, 5))
    pts = [r for r in result["rows"] if r.get("flops") and r.get("bytes") and r.get("tflops")]
    bw = c.get("bandwidth", {}).get("gbps")
    if bw:
        import numpy as np

        ai = np.logspace(-2, 4, 200)
        for k, x in c.items():
            if k == "bandwidth":
                continue
            roof = np.minimum(ai * bw / 1e3, x["tflops"])
            ax.plot(ai, roof * 1e3, lw=1, label=f"{k} roof ({x['tflops'] * 1e3:.0f} GFLOP/s, {bw:.0f} GB/s)")
    ops = list(dict.fromkeys(r["op"] for r in pts))
    cmap = plt.get_cmap("tab10")
    for i, op in enumerate(ops):
        rs = [r for r in pts if r["op"] == op]
        ax.scatter([r["flops"] / r["bytes"] for r in rs], [r["tflops"] * 1e3 for r in rs], s=14,
                   color=cmap(i % 10), label=("aten" + op) if op.startswith("_") else op, zorder=3)  # "_x" labels are hidden
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte of compulsory traffic)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"roofline — {dev}", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    p = os.path.join(outdir, "roofline.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)
    return written


def write_all(result: Dict[str, Any], outdir: str, command: Optional[str] = None) -> Dict[str, str]:
    os.makedirs(outdir, exist_ok=True)
    result["goals"] = goals(result)
    paths = {"json": os.path.join(outdir, "results.json"), "markdown": os.path.join(outdir, "results.md")}
    result["meta"]["command"] = command
    write_json(result, paths["json"])
    with open(paths["markdown"], "w") as f:
        f.write(to_markdown(result, command))
    sp, rp = plots(result, outdir)
    paths.update(speedup_png=sp, roofline_png=rp)
    return paths
