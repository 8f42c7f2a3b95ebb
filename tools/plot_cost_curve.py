#!/usr/bin/env python3
"""Plot forward cost curves from bench_forward runs: cost(n) / cost(1) against the rows n of one
forward, one line per run (medians of forward_cost/N), with the issue-8 targets (1.6 at n = 8,
2.2 at n = 16) marked and the ms of n = 1 in each legend entry.

    SPECDEC_WEIGHTS=fp32 build/bench/bench_forward --benchmark_filter=forward_cost \
        --benchmark_repetitions=3 --benchmark_out=fp32.json
    .venv/bin/python tools/plot_cost_curve.py "fp32 weights=fp32.json" "native=native.json" -o curve.png
"""
import argparse
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def medians(path):
    """{n: median real_time in ms} of the forward_cost/N entries of a Google Benchmark JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: cannot read {path}: {e}")
    out = {}
    for b in j.get("benchmarks", []):
        m = re.match(r"forward_cost/(\d+)/", b.get("name", ""))
        if m and b.get("aggregate_name") == "median":
            out[int(m.group(1))] = float(b["real_time"])
    if 1 not in out:
        sys.exit(f"error: {path}: no forward_cost/1 median (run with --benchmark_repetitions >= 2)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=FILE.json")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in a.runs:
        if "=" not in run:
            sys.exit(f"error: '{run}' is not LABEL=FILE.json")
        label, path = run.split("=", 1)
        c = medians(path)
        ns = sorted(c)
        ax.plot(ns, [c[n] / c[1] for n in ns], marker="o", label=f"{label} (n = 1: {c[1]:.1f} ms)")
    ax.scatter([8, 16], [1.6, 2.2], marker="*", s=150, color="black", zorder=5, label="issue-8 targets")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("rows per forward (n)")
    ax.set_ylabel("cost(n) / cost(1)")
    ax.set_title("forward cost curve (256 cached tokens, 2 threads)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(a.out)


if __name__ == "__main__":
    main()
