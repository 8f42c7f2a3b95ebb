#!/usr/bin/env python3
"""Plot specdec-eval results: speedup over AR per category (grouped bars per method, overall
included, a line at 1.0) and, when the run had --sweep-budget, speedup and MAT against the tree
budget in a second panel.

    .venv/bin/python tools/plot_eval.py results.json -o out.png
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: cannot read {path}: {e}")
    if not isinstance(j.get("methods"), dict) or "ar" not in j["methods"]:
        sys.exit(f"error: {path}: not a specdec-eval result (no methods.ar)")
    return j


def plot_categories(ax, j):
    methods = [m for m in j["methods"] if m != "ar"] or ["ar"]
    cats = j.get("categories") or list(j["methods"][methods[0]]["categories"])
    groups = cats + ["overall"]
    width = 0.8 / len(methods)
    for k, m in enumerate(methods):
        r = j["methods"][m]
        values = [r["categories"].get(c, {}).get("speedup", 0.0) for c in cats] + [r["speedup"]]
        xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(xs, values, width, label=f"{m} (budget {r.get('budget', '?')}, MAT {r['mat']:.2f})")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("speedup over AR (tokens/s ratio)")
    ar_tps = j["methods"]["ar"]["tokens_per_s"]
    ax.set_title(f"speedup by category (AR {ar_tps:.1f} tok/s, {j.get('n_prompts', '?')} prompts, "
                 f"{j['max_new_tokens']} new tokens)")
    ax.legend(fontsize=8)


def plot_sweep(ax, j):
    mat_ax = ax.twinx()
    for m, all_points in j["sweep"].items():
        # --sweep-budget ...,auto: the auto point sits at its mean budget, as a star.
        points = sorted((p for p in all_points if p["budget"] != "auto"), key=lambda p: p["budget"])
        budgets = [p["budget"] for p in points]
        line, = ax.plot(budgets, [p["speedup"] for p in points], marker="o", label=f"{m} speedup")
        mat_ax.plot(budgets, [p["mat"] for p in points], marker="x", linestyle=":", color=line.get_color(),
                    label=f"{m} MAT")
        for p in all_points:
            if p["budget"] == "auto":
                ax.plot([p["budget_mean"]], [p["speedup"]], marker="*", markersize=12, linestyle="none",
                        color=line.get_color(), label=f"{m} auto (mean budget {p['budget_mean']:.1f})")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xscale("log", base=2)
    all_budgets = sorted({p["budget"] for pts in j["sweep"].values() for p in pts if p["budget"] != "auto"})
    ax.set_xticks(all_budgets, [str(b) for b in all_budgets])
    ax.set_xlabel("tree budget (nodes per step, root included)")
    ax.set_ylabel("speedup over AR")
    mat_ax.set_ylabel("MAT (tokens per step)")
    ax.set_title("budget sweep")
    handles = ax.get_legend_handles_labels()
    mat_handles = mat_ax.get_legend_handles_labels()
    ax.legend(handles[0] + mat_handles[0], handles[1] + mat_handles[1], fontsize=8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="JSON written by specdec-eval --json")
    ap.add_argument("-o", "--out", default="eval.png", help="PNG to write (default eval.png)")
    args = ap.parse_args()
    j = load(args.results)

    sweep = bool(j.get("sweep"))
    fig, axes = plt.subplots(1, 2 if sweep else 1, figsize=(15 if sweep else 9, 5), squeeze=False)
    plot_categories(axes[0][0], j)
    if sweep:
        plot_sweep(axes[0][1], j)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
