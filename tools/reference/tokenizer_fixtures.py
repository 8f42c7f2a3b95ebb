"""Reference token ids for the tokenizer tests, from Hugging Face code reading the same GGUF file.

The tokenizer is built the way transformers builds one from a GGUF (convert_gguf_tokenizer), from
fields read with gguf.GGUFReader; transformers' own get_gguf_tokenizer needs torch, so only its dict
building is reproduced here. One correction: transformers has no split for tokenizer.ggml.pre =
"smollm" and falls back to the plain GPT-2 split, while llama.cpp first isolates every \\p{N}
character (and the vocabulary was trained so: no token joins a digit to anything), which HF spells
Digits(individual_digits=True) before ByteLevel. The two differ where whitespace precedes a number
("a  1": [a, Ġ, Ġ, 1] against [a, ĠĠ, 1]), so "ids" comes from the corrected tokenizer and
"ids_gguf_conversion" from the uncorrected one (the C++ side checks it with pre = "gpt2").

For tokenizer.ggml.pre = "qwen2" transformers' conversion is used as it is: the Qwen2 split regex,
then byte-level BPE, which is also what llama.cpp runs. Qwen's own tokenizer.json has an NFC
normalizer in front that neither the conversion nor llama.cpp has; the texts where that would change
the ids (those NFC changes) are listed in "nfc_changes", and the C++ side follows the conversion.

Writes OUT/tokenizer_reference.json:
  cases    [{name, text, ids, ids_gguf_conversion, splits: {gpt2, smollm, llama3, qwen2: [piece, ...]}}]
           for every turn of every prompt ("<id>/<turn>"), "stress", "code", "edge/<i>" and
           "random/<i>"; ids without special tokens added; splits by Oniguruma with each pattern
  special  {text, ids_parse_special, ids_plain}: control tokens in the text, parsed or not
  chats    [{name, messages, add_generation_prompt, text, ids}]: rendered by jinja2 from the file's own
           tokenizer.chat_template, ids with special tokens parsed (a conversation the template
           itself refuses to render, such as no messages at all for Qwen's, is left out)
  nfc_changes  names of the cases whose text NFC normalization changes
Run directly with
    .venv/bin/python tools/reference/tokenizer_fixtures.py --model M.gguf --prompts P.jsonl --out DIR
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import gguf

GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# One long text that walks through the cases a byte-level BPE pre-tokenizer gets wrong.
STRESS_TEXT = (
    "Héllo wörld! Ça va? naïve café résumé façade coöperate Ångström Straße ÆØÅ æøå\n"
    "Ελληνικά Русский текст, עברית, العربية, हिन्दी, ไทย, 한국어 텍스트, 日本語のテキスト、中文文本。\n"
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷🇯🇵 ✨✨ 🤖💬\n"
    "Numbers: 0 7 42 123 4567 89012 3.14159 -2.5e-10 1,000,000 ½ ² ³ ٣٤٥ ४२ Ⅻ 𝟘𝟙 x  1 a\t2 \n3\n"
    "Dates 2024-01-31T12:34:56Z, phone +1 (555) 010-9999, version v1.2.3-rc4, hex 0xDEADbeef\n"
    "Whitespace:  two spaces,   three,    four,\ttab,\t\ttwo tabs, \t mixed \t, trailing   \n"
    "\n\n\nthree newlines, \r\nCRLF,\r\n\r\n  indented after CRLF\n"
    "        eight spaces before a word\n"
    "\u00a0no-break\u00a0space, \u2003em space, \u3000ideographic space, \u2028line sep, \x85nel, "
    "\x0bvt \x0cff \x1cfs\x1d\x1e\x1f, \u200bzero\u200bwidth, soft\u00adhyphen\n"
    "Contractions: I'm you're we've they'll she'd it's don't can't IT'S I'M Y'ALL o'clock rock'n'roll "
    "'quoted' \"double\" ‘curly’ “quotes” it’s l'été 's 't '\n"
    "Code:\n"
    "def f(x: int) -> int:\n"
    "    return x**2 + 1  # square\n"
    "\tif (a != b && c <= d) { std::cout << \"hi\\n\"; }\n"
    "const re = /[a-z]+\\d{2,}/gi; $var @decorator #include <vector> 100% ~/path/to/file.txt\n"
    "URLs: https://example.com/a?b=c&d=e#frag user@example.org\n"
    "Mixed: abc123def ABC_DEF camelCaseWord snake_case_word ＦＵＬＬ　ＷＩＤＴＨ Ⅷ ﬁ ﬀ ŉ\n"
    "Combining: e\u0301 a\u0308 n\u0303 \u0915\u093f \u05e9\u05c1 Z\u0351\u0352\u0353algo\n"
    "Partial specials: <|im_sta <|unknown|> <| |> <|endoftext| >\n"
    "Repeats: aaaaaaaaaaaaaaaaaaaaaaaa ------------------------ ............ !!!??? ======\n"
    "End with spaces and no newline   "
)

# Code as a coding model sees it: indentation runs, digits, operators, brackets, escapes, mixed
# languages, a diff and a traceback.
CODE_TEXT = (
    "```python\n"
    "import numpy as np\n\n\n"
    "class Matrix:\n"
    "    \"\"\"A 2x2 matrix; see https://en.wikipedia.org/wiki/Matrix_(mathematics).\"\"\"\n\n"
    "    def __init__(self, a: float = 1.0, b=0, c=0, d=1e-9) -> None:\n"
    "        self._m = [[a, b], [c, d]]  # row-major\n\n"
    "    def __matmul__(self, other: 'Matrix') -> 'Matrix':\n"
    "        (a, b), (c, d) = self._m\n"
    "        return Matrix(a*other._m[0][0] + b*other._m[1][0], 0x1F, 0b1010, 0o777)\n\n"
    "    def __repr__(self):\n"
    "        return f\"Matrix({self._m!r:>10})\\n\\t{len(self._m):03d}\"\n"
    "\tif x==1:pass\n"
    "```\n"
    "```cpp\n"
    "template <typename T, std::size_t N>\n"
    "constexpr auto sum(const std::array<T, N>& xs) noexcept -> T {\n"
    "  T acc{};\n"
    "  for (std::size_t i = 0; i < N; ++i) { acc += xs[i] >> 2 | 0xFFu; }  // 12345678901234567890\n"
    "  return acc;\n"
    "}\n"
    "```\n"
    "SELECT id, COUNT(*) AS n FROM users WHERE age >= 18 AND name LIKE '%o_n%' GROUP BY 1;\n"
    "$ git diff --stat HEAD~3..HEAD && echo \"$PATH\" | tr ':' '\\n' > /tmp/out.txt 2>&1\n"
    "@@ -12,7 +12,8 @@ def main(argv):\n"
    "-    return 0\n"
    "+    return 42 if argv else -1\n"
    "Traceback (most recent call last):\n"
    "  File \"/usr/lib/python3.11/site-packages/x.py\", line 1337, in <module>\n"
    "    raise ValueError(f'bad value: {v!r}')\n"
    "ValueError: bad value: 3.14\n"
    "{\"key\": [1, 2.5, -3e+10, true, null], \"nested\": {\"a\": \"b\\u00e9\"}}\n"
    "<div class=\"row\">&nbsp;&lt;tag&gt;</div><!-- comment -->\n"
    "fn main() { let v: Vec<u8> = (0..=255).collect(); println!(\"{:?}\", &v[..4]); }\n"
    "        \n\n\n    deeply_indented = lambda x: x ** 2 // 3 % 7  \n"
)

# Short texts for the edges: empty, lone whitespace, and where the pre-tokenizers disagree.
EDGE_TEXTS = [
    "", " ", "  ", "\n", "\n\n", " \n ", "\t", "a", " a", "  a", "a ", "a  ", "a  1", "a   12", " 1", "  1",
    "1 2  3   4", "x\n1", "x \n 1", "it's", "IT'S", "it'S", "'s", "''s", "'ſ", "it'ſt", "don't", "I'll've",
    "hello world", "hello  world", "hello\tworld", "hello\n\nworld", "hello \n world", "   leading",
    "trailing   ", "\r\n", "a\r\nb", "a \r\n b", "a\r\r\n\nb", "!!!", " !!!", "  !!!", "a!!!\n\n",
    "\u00a0", "\u00a0a", "a\u00a0\u00a0b", "\x1c", "a\x1cb", "\x85\x85x", "😀", " 😀", "😀😀", "ñ", "n\u0303",
    "日本語", " 日本語", "123456", "١٢٣", "½½", " ½", "Ⅻ", "x²", "\U00031350\U00031351", " \u1c89",
]


# Random strings over characters where the patterns branch (fixed seed): a differential test of the
# hand-written pre-tokenizers against Oniguruma.
RANDOM_POOL = (
    list("aZé中ſK") + list("07½²٣")
    + [" ", " ", "  ", "    ", "\t", "\n", "\n\n", "\r", "\r\n", "\x0b", "\x85", "\u00a0", "\u3000", "\x1c"]
    + list("'’!?.,-_#<|>\"")
    + ["'s", "'S", "'ll", "'LL", "'re", "'ve", "'d", "'m", "'t"]
    + ["😀", "👍🏽", "\u200d", "\u0301", "\u200b", "ab", "the", " the", "123"]
)
N_RANDOM = 300


def random_texts(seed: int = 1234) -> list[str]:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(1, 24))) for _ in range(N_RANDOM)]


def field_value(field: gguf.ReaderField):
    """A metadata value as Python data: str, int, float, bool, or a list of those."""
    def scalar(part, vtype):
        if vtype == gguf.GGUFValueType.STRING:
            return bytes(part).decode("utf-8")
        value = part[0].item()
        return bool(value) if vtype == gguf.GGUFValueType.BOOL else value

    if field.types[0] == gguf.GGUFValueType.ARRAY:
        return [scalar(field.parts[i], field.types[-1]) for i in field.data]
    return scalar(field.parts[field.data[0]], field.types[0])


def read_tokenizer_dict(model_path: Path) -> tuple[str, dict, dict]:
    """(architecture, tokenizer_dict, extras) as transformers' get_gguf_tokenizer builds them."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING

    reader = gguf.GGUFReader(str(model_path))
    fields = {name: field_value(f) for name, f in reader.fields.items()
              if name.startswith("tokenizer.") or name == "general.architecture"}
    tokenizer_dict = {name: fields[f"tokenizer.{key}"]
                      for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
                      if f"tokenizer.{key}" in fields}
    extras = {"chat_template": fields.get("tokenizer.chat_template", ""),
              "add_bos_token": fields.get("tokenizer.ggml.add_bos_token", False)}
    return fields["general.architecture"], tokenizer_dict, extras


def build_reference(architecture: str, tokenizer_dict: dict):
    """(reference, gguf_conversion): tokenizers.Tokenizer objects, see the module docstring. Where no
    correction applies they are the same object (building one for 152k tokens takes ~15 s)."""
    from tokenizers import pre_tokenizers
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    conversion, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    if tokenizer_dict.get("pre_tokenizer_type") != "smollm":
        return conversion, conversion
    reference, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    if tokenizer_dict.get("pre_tokenizer_type") == "smollm":
        reference.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    return reference, conversion


@functools.lru_cache(maxsize=2)
def reference_tokenizers(model_path: Path):
    """(architecture, tokenizer_dict, extras, reference, conversion) of a GGUF file, built once."""
    architecture, tokenizer_dict, extras = read_tokenizer_dict(model_path)
    reference, conversion = build_reference(architecture, tokenizer_dict)
    return architecture, tokenizer_dict, extras, reference, conversion


def splits(text: str) -> dict[str, list[str]]:
    """How each pre-tokenizer pattern cuts `text`, by Oniguruma (tokenizers' regex engine)."""
    from tokenizers import Regex, pre_tokenizers
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    gpt2 = pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated")
    llama3 = pre_tokenizers.Split(Regex(GGUF_PRE_TOKENIZER_SPLITS["llama3"]), behavior="isolated")
    qwen2 = pre_tokenizers.Split(Regex(GGUF_PRE_TOKENIZER_SPLITS["qwen2"]), behavior="isolated")
    smollm = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), gpt2])
    return {name: [piece for piece, _ in p.pre_tokenize_str(text)]
            for name, p in (("gpt2", gpt2), ("smollm", smollm), ("llama3", llama3), ("qwen2", qwen2))}


def text_case(name: str, text: str, reference, conversion) -> dict:
    ids = reference.encode(text, add_special_tokens=False).ids
    return {"name": name, "text": text, "ids": ids,
            "ids_gguf_conversion": conversion.encode(text, add_special_tokens=False).ids,
            "splits": splits(text)}


def render_chat(template: str, messages: list[dict], add_generation_prompt: bool, extras: dict) -> str:
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # The environment transformers' apply_chat_template renders with.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            **extras)


def write_tokenizer_fixtures(model_path, prompts_path, out_dir) -> Path:
    """Writes out_dir/tokenizer_reference.json and returns its path."""
    import unicodedata

    import jinja2
    import tokenizers
    import transformers

    model_path, prompts_path, out_dir = Path(model_path), Path(prompts_path), Path(out_dir)
    _, tokenizer_dict, extras, reference, conversion = reference_tokenizers(model_path)
    tokens = tokenizer_dict["tokens"]
    special_names = {name: tokens[tokenizer_dict[key]] for name, key in
                     (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"))
                     if tokenizer_dict.get(key) is not None}

    prompts = [json.loads(line) for line in prompts_path.read_text().splitlines() if line.strip()]
    cases = [text_case(f"{p['id']}/{i}", turn, reference, conversion)
             for p in prompts for i, turn in enumerate(p["turns"])]
    cases.append(text_case("stress", STRESS_TEXT, reference, conversion))
    cases.append(text_case("code", CODE_TEXT, reference, conversion))
    cases += [text_case(f"edge/{i}", t, reference, conversion) for i, t in enumerate(EDGE_TEXTS)]
    cases += [text_case(f"random/{i}", t, reference, conversion) for i, t in enumerate(random_texts())]

    # Special tokens in the text: parsed (the default of HF) and not parsed (encode_special_tokens).
    special_text = "<|im_start|>user\nhi<|im_end|><|endoftext|> <|im_start|><|im_start|>x<|im_end|\n<|im_end|>"
    parsed = reference.encode(special_text, add_special_tokens=False).ids
    reference.encode_special_tokens = True
    unparsed = reference.encode(special_text, add_special_tokens=False).ids
    reference.encode_special_tokens = False

    template = extras["chat_template"]
    chats = []
    for p in prompts:
        messages = [{"role": "user", "content": p["turns"][0]}]
        text = render_chat(template, messages, True, special_names)
        chats.append({"name": p["id"], "messages": messages, "add_generation_prompt": True, "text": text,
                      "ids": reference.encode(text, add_special_tokens=False).ids})
    extra_chats = [
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}], True),
        ([{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."},
          {"role": "user", "content": "Bye."}], False),
        ([{"role": "user", "content": "Hi!"}, {"role": "system", "content": "Now in French."},
          {"role": "user", "content": "Bonjour ?"}], True),
        ([], True),
    ]
    for i, (messages, add_generation_prompt) in enumerate(extra_chats):
        try:
            text = render_chat(template, messages, add_generation_prompt, special_names)
        except jinja2.exceptions.UndefinedError:  # e.g. Qwen's reads messages[0] unconditionally
            continue
        chats.append({"name": f"extra/{i}", "messages": messages,
                      "add_generation_prompt": add_generation_prompt, "text": text,
                      "ids": reference.encode(text, add_special_tokens=False).ids})

    doc = {
        "model": str(model_path),
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "pre_tokenizer": tokenizer_dict.get("pre_tokenizer_type", ""),
        "n_vocab": len(tokens),
        "chat_template": template,
        "cases": cases,
        "special": {"text": special_text, "ids_parse_special": parsed, "ids_plain": unparsed},
        "chats": chats,
        "nfc_changes": [c["name"] for c in cases if unicodedata.normalize("NFC", c["text"]) != c["text"]],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer_reference.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--prompts", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    print(f"tokenizer_fixtures: wrote {write_tokenizer_fixtures(args.model, args.prompts, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
