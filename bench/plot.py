#!/usr/bin/python3
"""Draws throughput vs size (log-log) for every row of a bench result JSON
into the PNG beside it. usage: plot.py RESULTS.json"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def size_label(n):
    for unit, v in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= v:
            return f"{n // v} {unit}"
    return f"{n} B"


def markdown(results):
    """The README table: one line per row with its ratio to its reference."""
    lines = [f"Machine: {results['machine']}; iperf3 loopback (1 connection): "
             f"{results['iperf3_Bps'] / 1e9:.2f} GB/s. Median of repeats.", "",
             "| case | size | throughput | p50 ms | p99 ms | ratio |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        ratio = f"{r['ratio']:.2f}x {r['ref']}" if r.get("ratio") is not None else ""
        if "vs_usual" in r:
            ratio += f"; {r['vs_usual']:.2f}x usual peer"
        lines.append(f"| {r['case']} | {size_label(r['size'])} | {r['Bps'] / 1e9:.3f} GB/s | "
                     f"{r['p50'] * 1e3:.3f} | {r['p99'] * 1e3:.3f} | {ratio} |")
    s = results.get("small")
    if s:
        lines.append("")
        lines.append(f"4 KiB fetch p50 {s['fetch']['p50'] * 1e6:.0f} us / p99 {s['fetch']['p99'] * 1e6:.0f} us vs "
                     f"unary gRPC echo of 4 KiB p50 {s['echo']['p50'] * 1e6:.0f} us / p99 "
                     f"{s['echo']['p99'] * 1e6:.0f} us: p50 ratio {s['p50_ratio']:.2f}x"
                     + (f" (median of {len(s['rounds'])} alternating rounds: "
                        + ", ".join(f"{r['p50_ratio']:.2f}x" for r in s["rounds"]) + ")."
                        if "rounds" in s else "."))
    m = results.get("memory")
    if m:
        lines.append(f"Daemon peak RSS serving a {size_label(m['tensor_bytes'])} tensor to 4 clients at once: "
                     f"{m['peak_during_4_fetches'] / 2**20:.0f} MiB, i.e. {m['peak_minus_base'] / 2**20:.0f} MiB "
                     f"over its {m['rss_before_put'] / 2**20:.0f} MiB start (goal: tensor + 128 MiB = "
                     f"{m['goal'] / 2**20:.0f} MiB).")
    return "\n".join(lines)


def main():
    path = sys.argv[-1]
    with open(path) as f:
        results = json.load(f)
    if "--markdown" in sys.argv:
        print(markdown(results))
        return
    series = {}
    for row in results["rows"]:
        if row["case"].startswith("concurrency"):
            continue
        series.setdefault(row["case"], []).append((row["size"], row["Bps"]))
    fig, ax = plt.subplots(figsize=(10, 6))
    for case, points in sorted(series.items()):
        points.sort()
        style = "--" if case.startswith("limit") else (":" if case.startswith("usual") else "-")
        ax.plot([p[0] for p in points], [p[1] / 1e9 for p in points], style, marker="o", label=case)
    if "iperf3_Bps" in results:
        ax.axhline(results["iperf3_Bps"] / 1e9, color="gray", lw=0.8, label="iperf3 loopback")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tensor bytes")
    ax.set_ylabel("GB/s (median)")
    ax.set_title(f"npystream vs the usual way — {results['machine']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", lw=0.3)
    out = os.path.splitext(path)[0] + ".png"
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
