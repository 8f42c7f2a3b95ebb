#!/usr/bin/env bash
# specdec-generate end to end: a sensible greedy answer, deterministic greedy output, --json carrying
# only JSON, the default weights equal to --weights fp32, and every kind of bad input answered with
# one "error:" line and exit code 2.
set -u
bin="$1"; model="$2"; root="$3"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

"$bin" -m "$model" -p "What is the capital of France?" -n 32 --temp 0 >"$tmp/a" 2>"$tmp/a.err"
check $? "greedy run exit code"
grep -q "Paris" "$tmp/a"; check $? "answer mentions Paris: $(cat "$tmp/a")"
grep -q "prefill .* tok/s | decode .* tok/s" "$tmp/a.err"; check $? "stats line"

"$bin" -m "$model" -p "Tell me a short story about a robot." -n 40 --temp 0 --json >"$tmp/j1" 2>"$tmp/j1.err"
check $? "json run exit code"
"$bin" -m "$model" -p "Tell me a short story about a robot." -n 40 --temp 0 --json >"$tmp/j2" 2>/dev/null
python3 - "$tmp/j1" "$tmp/j2" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["tokens"] == b["tokens"], "greedy output differs run to run"
assert len(a["tokens"]) == a["n_generated"] > 0
for k in ("text", "prompt_tokens", "prefill_tokens_per_s", "decode_tokens_per_s", "stop_reason"):
    assert k in a, k
PY
check $? "json output parses, has the fields, and greedy is deterministic"
[ ! -s "$tmp/j1.err" ]; check $? "--json writes nothing to stderr"

# The default (--weights auto, f32 activations: the file's blocks widened in registers) and every
# tensor dequantized at load (--weights fp32) compute the same logits, so the same tokens.
"$bin" -m "$model" -p "Tell me a short story about a robot." -n 40 --temp 0 --json --weights fp32 >"$tmp/j3" 2>/dev/null
check $? "--weights fp32 run exit code"
python3 - "$tmp/j1" "$tmp/j3" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["tokens"] == b["tokens"], "default weights and --weights fp32 differ"
PY
check $? "default weights give the --weights fp32 tokens"

# --budget auto: the greedy tokens of plain decoding, the cost curve cached under --cost-cache, the
# budgets used in the JSON.
"$bin" -m "$model" -p "Tell me a short story about a robot." -n 40 --temp 0 --json --method lookahead --budget auto \
  --cost-cache "$tmp/cache" >"$tmp/j4" 2>/dev/null
check $? "--budget auto run exit code"
python3 - "$tmp/j1" "$tmp/j4" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["tokens"] == b["tokens"], "--budget auto differs from plain greedy decoding"
assert b["budget"] == "auto" and b["budget_mean"] >= 1 and sum(b["steps_by_budget"]) == b["steps"], b
PY
check $? "--budget auto equals greedy decoding and reports its budgets"
ls "$tmp/cache"/cost-*.txt >/dev/null 2>&1; check $? "--budget auto cached the cost curve"

"$bin" -p "Say hello." -n 8 --temp 0 >/dev/null 2>&1
check $? "default model found without -m"
printf 'What is 2 + 2?' >"$tmp/prompt.txt"
"$bin" -m "$model" -f "$tmp/prompt.txt" -n 8 --temp 0.8 --top-k 20 --top-p 0.9 --seed 1 >/dev/null 2>&1
check $? "prompt file with sampling"

printf 'not a gguf file at all, just text\n' >"$tmp/bad.gguf"
expect_error "missing model" "cannot open" -m "$tmp/nope.gguf" -p hi
expect_error "non-GGUF model" "not a GGUF file" -m "$tmp/bad.gguf" -p hi
"$root/.venv/bin/python" - "$tmp/mamba.gguf" <<'PY'
import sys, gguf
w = gguf.GGUFWriter(sys.argv[1], arch="mamba")
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
PY
expect_error "unsupported architecture" "architecture 'mamba'" -m "$tmp/mamba.gguf" -p hi
expect_error "model without a tokenizer" "tokenizer.ggml.model" -m "$root/tests/fuzz/corpus/gguf/tiny_llama.gguf" -p hi
expect_error "unreadable prompt file" "prompt file" -m "$model" -f "$tmp/missing.txt"
expect_error "prompt file is a directory" "prompt file" -m "$model" -f "$tmp"
expect_error "prompt longer than the context" "context holds" -m "$model" -p "$(printf 'word %.0s' $(seq 300))" -c 64
expect_error "n out of range" "n-predict" -m "$model" -p hi -n 0
expect_error "budget neither a number nor auto" "is not auto or a number" -m "$model" -p hi --budget lots
expect_error "negative temperature" "temp" -m "$model" -p hi --temp -1
expect_error "top-p out of range" "top-p" -m "$model" -p hi --top-p 1.5
expect_error "threads out of range" "threads" -m "$model" -p hi -t 0
expect_error "unknown flag" "bogus" -m "$model" -p hi --bogus
expect_error "no prompt" "prompt" -m "$model"
expect_error "unknown method" "unknown method 'nope'" -m "$model" -p hi --method nope
expect_error "not a number" "n-predict" -m "$model" -p hi -n many
expect_error "draft flags without a draft method" "need --method dyspec" -m "$model" -p hi --draft-layers first:4
expect_error "draft layer list out of range" "--draft-layers 0-40: layer subset: layer 30 outside" -m "$model" -p hi --method sps --draft-layers 0-40
expect_error "draft layer list not ascending" "ascending" -m "$model" -p hi --method sps --draft-layers 5,2
expect_error "both draft sources" "exclude each other" -m "$model" -p hi --method sps --draft-layers first:4 --draft-model "$model"
expect_error "missing draft model" "cannot open" -m "$model" -p hi --method dyspec --draft-model "$tmp/nope.gguf"
expect_error "bad --weights value" "--weights: 'q7'" -m "$model" -p hi --weights q7
expect_error "bad --activations value" "--activations: 'fp16' is not one of f32, int8" -m "$model" -p hi --activations fp16
expect_error "budget too small for a draft method" "at least 2 nodes" -m "$model" -p hi --method sps --budget 1

# Every method gives the autoregressive greedy output, token for token.
"$bin" -m "$model" -p "List three colours." -n 24 --temp 0 --json --method ar >"$tmp/ar.json" 2>/dev/null
for method in $("$bin" --list-methods); do
  "$bin" -m "$model" -p "List three colours." -n 24 --temp 0 --json --method "$method" >"$tmp/m.json" 2>/dev/null
  check $? "method $method runs"
  python3 -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a['tokens']!=b['tokens'])" \
    "$tmp/ar.json" "$tmp/m.json"
  check $? "method $method greedy output equals ar"
done

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
