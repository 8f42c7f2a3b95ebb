#!/usr/bin/env python3
"""Greedy continuations of the dev prompts under several storage settings, compared with a base.

For each prompt of a JSONL file (the chat template applied, as specdec-generate does), runs
specdec-generate once per setting with --temp 0 --json and compares its tokens with those of the
first setting (the base): per setting, how many prompts give the same tokens, and on the prompts
where they differ, the position of the first differing token (median / smallest). A lossy setting
shows here how far it moves greedy decoding; a lossless one (--weights auto with f32 activations
against --weights fp32) must agree on every prompt. --tokens-out keeps every run's tokens (JSON).

  tools/greedy_agreement.py --generate build/examples/generate/specdec-generate \
      --prompts data/prompts/dev.jsonl -n 128 --out docs/results/agreement.md \
      --setting fp32="--weights fp32" --setting auto="" --setting "kv f16"="--kv-type f16"
"""
import argparse
import json
import shlex
import statistics
import subprocess
import sys


def run(generate, prompt, n, threads, extra):
    cmd = [generate, "-p", prompt, "-n", str(n), "--temp", "0", "-t", str(threads), "--json"] + extra
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"greedy_agreement: {' '.join(map(shlex.quote, cmd))} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def common_prefix(a, b):
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return k


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate", required=True, help="path of specdec-generate")
    ap.add_argument("--prompts", required=True, help="JSONL with 'id' and 'turns'")
    ap.add_argument("-n", type=int, default=128, help="new tokens per prompt (default 128)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--setting", action="append", required=True,
                    help="NAME=FLAGS: a setting and its specdec-generate flags; the first is the base")
    ap.add_argument("--out", help="also write the table (Markdown) here")
    ap.add_argument("--tokens-out", help="also write every setting's tokens per prompt (JSON) here")
    a = ap.parse_args()

    settings = []
    for s in a.setting:
        if "=" not in s:
            sys.exit(f"greedy_agreement: --setting '{s}' is not NAME=FLAGS")
        name, flags = s.split("=", 1)
        settings.append((name, shlex.split(flags)))
    prompts = []
    with open(a.prompts, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                j = json.loads(line)
                prompts.append((j["id"], j["turns"][0]))
            except (ValueError, KeyError, IndexError) as e:
                sys.exit(f"greedy_agreement: {a.prompts}:{line_no}: not a prompt record ({e})")

    tokens = {name: [] for name, _ in settings}
    speed = {name: [] for name, _ in settings}
    for i, (pid, text) in enumerate(prompts, 1):
        for name, flags in settings:
            j = run(a.generate, text, a.n, a.threads, flags)
            tokens[name].append(j["tokens"])
            speed[name].append(j["decode_tokens_per_s"])
        print(f"[{i}/{len(prompts)}] {pid}", file=sys.stderr, flush=True)

    base = settings[0][0]
    rows = [f"| setting | flags | same tokens as {base} | first difference, median / min | decode tok/s (median) |",
            "|---|---|---|---|---|"]
    for name, flags in settings:
        pairs = list(zip(tokens[name], tokens[base]))
        same = sum(1 for t, b in pairs if t == b)
        firsts = [common_prefix(t, b) for t, b in pairs if t != b]
        where = f"{statistics.median(firsts):.0f} / {min(firsts)}" if firsts else "-"
        rows.append(f"| {name} | `{' '.join(flags) or '(defaults)'}` | {same} / {len(prompts)} | {where} | "
                    f"{statistics.median(speed[name]):.1f} |")
    table = "\n".join(rows)
    print(table)
    if a.tokens_out:
        with open(a.tokens_out, "w", encoding="utf-8") as f:
            json.dump({"prompts": [pid for pid, _ in prompts], "n": a.n,
                       "settings": {name: {"flags": flags, "tokens": tokens[name]} for name, flags in settings}}, f)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(f"Greedy agreement, {len(prompts)} prompts of {a.prompts}, up to {a.n} tokens (a run may stop early at the end-of-turn token), {a.threads} threads\n\n")
            f.write(table + "\n")


if __name__ == "__main__":
    main()
