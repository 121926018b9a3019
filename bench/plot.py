#!/usr/bin/python3
"""Draws throughput vs size (log-log) for every row of a bench result JSON
into the PNG beside it. usage: plot.py RESULTS.json"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    path = sys.argv[1]
    with open(path) as f:
        results = json.load(f)
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
