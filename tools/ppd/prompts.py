"""The PPD training prompt set: several thousand user prompts built offline, deterministically.

Sources (nothing is downloaded; see tools/ppd/README.md):
  * the documentation of the running Python's standard library: module, class and function
    docstrings and short function bodies, read from the .py files under sysconfig's "stdlib" path with
    `ast` (nothing is imported, so no module runs), plus the language-reference help texts of
    `pydoc_data.topics` (what pydoc's help() shows);
  * templated prompts written here: arithmetic word problems with random numbers, everyday notices
    and news-like paragraphs with random details, chat requests over topic lists.
They are arranged into the six categories of data/prompts/dev.jsonl: chat, code, summarize, qa,
math, rag. Everything is driven by one random.Random(seed) and sorted inputs, so the same Python
version gives the same set (another Python version has other docstrings and gives another set).

No prompt equals or contains an evaluation prompt of data/prompts/dev.jsonl: a generated prompt
that would is dropped, and `build_prompt_set` asserts the final set is clean.

Use:
    prompts = build_prompt_set(seed=0)                 # [{"id", "category", "text"}], shuffled
    train, heldout = split_heldout(prompts, 0.05)
    ids = ChatRenderer(model_path).encode(text)        # ChatML with the model's default system turn
"""
from __future__ import annotations

import ast
import functools
import inspect
import json
import os
import random
import re
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEV_PROMPTS = REPO / "data" / "prompts" / "dev.jsonl"
CATEGORIES = ("chat", "code", "summarize", "qa", "math", "rag")
# Prompts per category, before the held-out split (about 4,300 in all).
DEFAULT_COUNTS = {"chat": 700, "code": 800, "summarize": 700, "qa": 700, "math": 700, "rag": 700}
MAX_CONTEXT_CHARS = 900

# ----------------------------------------------------------------------------- stdlib text

_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo", "ensurepip",
              "__pycache__", "lib-dynload", "pydoc_data", "distutils", "__phello__"}


@functools.lru_cache(maxsize=1)
def stdlib_items() -> tuple:
    """(module, qualname, kind, doc, source) for the public modules, classes and functions of the
    standard library that have a docstring, in sorted file order. source: the function's code for
    short functions (4-24 lines), else ""."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(("config-", "_")))
        for f in sorted(filenames):
            if f.endswith(".py") and not f.startswith("_"):
                files.append(Path(dirpath) / f)
    items = []
    for path in sorted(files):
        rel = path.relative_to(root).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        if not module or module in ("this", "antigravity"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        doc = ast.get_docstring(tree)
        if doc:
            items.append((module, module, "module", inspect.cleandoc(doc), ""))
        lines = text.splitlines()

        def visit(node, prefix):
            for child in node.body:
                if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                if child.name.startswith("_"):
                    continue
                qual = prefix + child.name
                d = ast.get_docstring(child)
                src = ""
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.end_lineno:
                    n = child.end_lineno - child.lineno + 1
                    if 4 <= n <= 24 and not child.decorator_list:
                        body = lines[child.lineno - 1:child.end_lineno]
                        indent = min(len(x) - len(x.lstrip()) for x in body if x.strip())
                        src = "\n".join(x[indent:] for x in body)
                        if "\t" in src or len(src) > 1000:
                            src = ""
                if d:
                    kind = "class" if isinstance(child, ast.ClassDef) else "function"
                    items.append((module, qual, kind, inspect.cleandoc(d), src))
                if isinstance(child, ast.ClassDef):
                    visit(child, qual + ".")

        visit(tree, "")
    return tuple(items)


@functools.lru_cache(maxsize=1)
def help_topics() -> tuple:
    """(topic, text) of pydoc's language-reference help, sorted by topic."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a Python built without pydoc_data
        return ()
    return tuple(sorted(topics.items()))


def _prose_paragraphs(doc: str) -> list[str]:
    """Paragraphs of a docstring that read as prose: no doctest, no tables, 120+ characters."""
    out = []
    for para in re.split(r"\n\s*\n", doc):
        p = para.strip()
        if len(p) < 120 or ">>>" in p or "::" in p or "===" in p or "---" in p or "***" in p:
            continue
        lines = p.splitlines()
        if any(x.startswith((" ", "\t")) for x in lines[1:]) and len(lines) > 3:
            continue  # indented block: code or an option table
        if sum(c.isalpha() or c == " " for c in p) < 0.85 * len(p):
            continue
        out.append(" ".join(x.strip() for x in lines))
    return out


def _first_sentence(doc: str) -> str:
    first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    m = re.match(r"(.+?[.!?])(\s|$)", first)
    return (m.group(1) if m else first).strip()


def _clip(text: str, limit: int = MAX_CONTEXT_CHARS) -> str:
    """At most `limit` characters, cut after a sentence end where possible."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(".\n"))
    return cut[:end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0] + " ..."


@functools.lru_cache(maxsize=1)
def doc_passages() -> tuple:
    """(title, passage) pairs of prose: docstring paragraphs joined per object, and help topics."""
    out = []
    for module, qual, kind, doc, _ in stdlib_items():
        paras = _prose_paragraphs(doc)
        if not paras:
            continue
        title = f"the {module} module" if kind == "module" else f"{qual} ({module})"
        out.append((title, _clip("\n\n".join(paras[:3]))))
    for topic, text in help_topics():
        paras = _prose_paragraphs(text)
        for i in range(0, min(len(paras), 9), 3):
            out.append((f"Python's {topic.replace('-', ' ')}", _clip("\n\n".join(paras[i:i + 3]))))
    return tuple(out)


# ------------------------------------------------------------------------------ word lists

NAMES = ["Anna", "Ben", "Carla", "David", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lena",
         "Marco", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Yusuf",
         "Zoe", "Maya", "Leo", "Sofia", "Noah", "Amira", "Lucas", "Hana", "Pedro", "Ingrid", "Tomas", "Aisha"]
ITEMS = [("notebook", "notebooks"), ("apple", "apples"), ("ticket", "tickets"), ("sticker", "stickers"),
         ("book", "books"), ("cupcake", "cupcakes"), ("pen", "pens"), ("plant", "plants"), ("toy car", "toy cars"),
         ("bottle of juice", "bottles of juice"), ("loaf of bread", "loaves of bread"), ("candle", "candles"),
         ("orange", "oranges"), ("marble", "marbles"), ("comic", "comics"), ("sandwich", "sandwiches")]
TOWNS = ["Millbrook", "Ashford", "Kelvale", "Dunmore", "Brightwater", "Oakridge", "Fernhill", "Stonebridge",
         "Larkspur", "Westhaven", "Elmstead", "Harrowgate", "Pinecliff", "Redmoor", "Silverlake", "Thornbury"]
TOPICS = ["the ocean", "friendship", "a lighthouse keeper", "the first day of school", "a lost umbrella",
          "a city at night", "a mountain village", "a robot learning to paint", "winter in the forest",
          "a grandmother's kitchen", "a busy train station", "the moon", "a dragon who is afraid of the dark",
          "a small bakery", "the desert at sunrise", "a rainy weekend", "an old bicycle", "a garden in spring",
          "a cat who runs a hotel", "the last day of summer", "a street market", "a time traveller",
          "learning to swim", "a snowy mountain hut", "a river journey", "an astronaut's first flight",
          "a forgotten library", "a kite festival", "a family road trip", "the sound of rain"]
FORMS = ["poem", "short story", "haiku", "limerick", "diary entry", "song verse", "fable", "letter"]
ACTIVITIES = ["learning a new language", "saving money", "sleeping better", "cooking healthy meals on a budget",
              "keeping a small apartment tidy", "preparing for a job interview", "starting to run",
              "taking better photos with a phone", "reducing screen time", "making new friends in a new city",
              "growing vegetables on a balcony", "reading more books", "travelling with young children",
              "speaking in public", "organising a birthday party", "staying calm before exams",
              "writing a good cover letter", "planning a weekly menu", "learning to play the guitar",
              "keeping houseplants alive", "cycling to work", "working in a team", "managing a busy week"]
PROCON = ["living in a big city", "owning a dog", "electric cars", "online shopping", "studying abroad",
          "using public transport", "homeschooling", "social media for teenagers", "a four-day work week",
          "buying a used car", "renting instead of buying a home", "learning to code as a child",
          "e-books compared with paper books", "working night shifts", "school uniforms", "smart speakers"]
OCCASIONS = ["a birthday picnic in the park", "a board game evening", "a charity bake sale", "a farewell dinner for "
             "a colleague", "a neighbourhood clean-up morning", "a book club meeting", "a summer barbecue",
             "a housewarming party", "a school reunion", "a movie night", "a volunteer day at the animal shelter"]
RECIPIENTS = ["my colleagues", "my landlord", "my best friend", "the parents of my child's class",
              "my team at work", "a new neighbour", "my cousin", "the members of my running club"]
KID_QUESTIONS = ["why leaves change colour in autumn", "how rainbows form", "why we need to sleep",
                 "how airplanes stay in the air", "why the sea is salty", "what makes thunder",
                 "how bees make honey", "why we have to brush our teeth", "how a compass works",
                 "why ice floats on water", "what a volcano is", "how the heart pumps blood",
                 "why stars twinkle", "how seeds grow into plants", "what gravity does"]
SCENES = ["a quiet library on a Sunday afternoon", "a crowded harbour at dawn", "a mountain lake in winter",
          "a night market full of food stalls", "an empty school after the holidays", "a sunny vineyard",
          "a snowy village before a holiday", "a thunderstorm over the plains", "a busy airport at midnight",
          "a flower field in early summer", "an old theatre before the show"]
CONCEPTS = ["gravity", "inflation", "a black hole", "democracy", "the water cycle", "an ecosystem", "a vaccine",
            "machine learning", "a budget", "an atom", "evolution", "a volcano", "renewable energy",
            "the greenhouse effect", "a credit card", "compound interest", "a language model", "the immune system",
            "plate tectonics", "a database", "an algorithm", "the internet", "supply and demand", "a recession",
            "a hurricane", "erosion", "the stock market", "DNA", "a solar eclipse", "friction", "an election",
            "a calorie", "a prime number", "electricity", "a password manager", "recycling", "a tide",
            "the Roman Empire", "the printing press", "the Industrial Revolution", "a glacier", "a rainforest"]
PAIRS = [("a virus", "a bacterium"), ("a lake", "a sea"), ("speed", "velocity"), ("a simile", "a metaphor"),
         ("RAM", "storage"), ("a comet", "an asteroid"), ("a loan", "a grant"), ("baking soda", "baking powder"),
         ("a crocodile", "an alligator"), ("a hurricane", "a tornado"), ("mass", "weight"),
         ("a republic", "a monarchy"), ("an alloy", "a compound"), ("HTTP", "HTTPS"), ("a frog", "a toad"),
         ("socialism", "capitalism"), ("a fruit", "a vegetable"), ("a stock", "a bond"), ("ice cream", "gelato")]
WHY = ["do cats purr", "is the ocean blue", "do onions make us cry", "do we get hiccups", "do birds migrate",
       "does bread go stale", "do we yawn", "does the moon change shape", "do leaves fall in autumn",
       "do we dream", "does metal feel colder than wood", "do some animals hibernate", "do we have fingerprints"]
FACTS = ["Who painted the Mona Lisa, and where can it be seen today?",
         "How many continents are there, and which is the largest?",
         "What is the tallest mountain in the world, and in which country is it?",
         "Who invented the telephone, and in which year?",
         "What is the boiling point of water at sea level in Celsius and Fahrenheit?",
         "Which planet is known as the Red Planet, and why?",
         "What language is spoken in Brazil, and why?",
         "How many bones are there in an adult human body?",
         "What is the longest river in Africa?",
         "Who was the first person to walk on the Moon?",
         "What is the chemical symbol for gold, and where does it come from?",
         "How long does it take the Earth to orbit the Sun?",
         "What is the largest ocean on Earth?",
         "Which gas do plants take in from the air?",
         "What is the capital of Japan, and what is it famous for?",
         "How many players are there in a football team on the pitch?",
         "Who wrote the novel Pride and Prejudice?",
         "What is the speed of light, roughly?",
         "What are the three states of matter?",
         "Which is the smallest planet in our solar system?"]
LANGS = ["Python", "JavaScript", "C", "C++", "Rust", "Go", "Java", "TypeScript"]
CODE_TASKS = ["counts the vowels in a string", "returns the largest number in a list",
              "removes duplicate values from a list while keeping their order",
              "checks whether a number is prime", "converts a temperature from Celsius to Fahrenheit",
              "computes the factorial of a number recursively", "merges two sorted lists into one sorted list",
              "returns the second smallest element of an array", "counts how often each word occurs in a text",
              "reverses the words of a sentence", "checks whether two strings are anagrams",
              "computes the greatest common divisor of two integers", "flattens a nested list",
              "returns the sum of the digits of an integer", "finds the longest word in a sentence",
              "checks whether a year is a leap year", "capitalises the first letter of every word",
              "converts a binary string to an integer", "implements binary search on a sorted array",
              "computes the average of the numbers in a list, ignoring missing values",
              "splits a list into chunks of a given size", "rotates an array to the right by k steps",
              "validates a simple email address", "returns the n-th row of Pascal's triangle",
              "counts the lines of a text file", "sorts a list of people by age and then by name",
              "computes the running total of a list", "checks whether brackets in a string are balanced",
              "finds all pairs in a list that add up to a target", "transposes a matrix",
              "formats a number of seconds as hours, minutes and seconds", "generates the first n primes",
              "returns the most common character in a string", "computes the dot product of two vectors"]
DATA_STRUCTURES = [("Queue", "enqueue, dequeue, peek and size"), ("LinkedList", "append, prepend, find and remove"),
                   ("BankAccount", "deposit, withdraw and balance"), ("Counter", "increment, decrement and reset"),
                   ("Inventory", "add_item, remove_item and total_value"), ("Matrix", "add, multiply and transpose"),
                   ("TodoList", "add, complete, remove and pending"), ("Rectangle", "area, perimeter and scale"),
                   ("Library", "add_book, lend, give_back and available"), ("Timer", "start, stop and elapsed")]
SQL_TASKS = ["lists the five most expensive products from a table products(id, name, price)",
             "counts the employees in each department from employees(id, name, department_id)",
             "finds the customers who have never placed an order, from customers(id, name) and orders(id, customer_id)",
             "returns the average salary per job title from staff(id, title, salary)",
             "lists the books published after 2010 from books(id, title, author, year), newest first",
             "deletes the log entries older than 30 days from logs(id, created_at, message)"]

# ------------------------------------------------------------------------------ category builders


def _math(rng: random.Random) -> str:
    n = rng.choice(NAMES)
    n2 = rng.choice([x for x in NAMES if x != n])
    item, items = rng.choice(ITEMS)
    ask = rng.choice(["Explain step by step.", "Show your reasoning.", "Think step by step.", "Show the steps.",
                      "Explain your answer.", "Show your working.", ""])
    k = rng.randrange(14)
    if k == 0:
        price, count = rng.randint(2, 9), rng.randint(2, 8)
        note = rng.choice([x for x in (10, 20, 50, 100) if x > price * count] or [100])
        q = (f"{n} buys {count} {items} that cost {price} dollars each and pays with a {note} dollar note. "
             f"How much change does {n} get?")
    elif k == 1:
        v1, h1, v2, h2 = rng.randint(30, 90), rng.randint(1, 4), rng.randint(30, 90), rng.randint(1, 3)
        q = (f"A bus drives at {v1} km per hour for {h1} hours and then at {v2} km per hour for {h2} hours. "
             f"How many kilometres does it cover?")
    elif k == 2:
        total, frac = rng.choice([(12, 3), (20, 4), (30, 5), (24, 6), (18, 3), (40, 8), (36, 4)])
        eaten = rng.randint(1, 5)
        q = (f"{n} has {total} {items}. {n} gives one {['', '', '', 'third', 'quarter', 'fifth', 'sixth', '', 'eighth'][frac]}"
             f" of them to {n2} and then loses {eaten}. How many {items} are left?")
    elif k == 3:
        p, base = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 75]), rng.choice([40, 80, 120, 160, 240, 300, 360, 500])
        q = f"What is {p} percent of {base}?"
    elif k == 4:
        a, b = rng.randint(3, 20), rng.randint(2, 15)
        unit = rng.choice(["metres", "centimetres", "feet", "inches"])
        q = f"A garden is {a} {unit} long and {b} {unit} wide. What are its area and its perimeter?"
    elif k == 5:
        w, d = rng.choice([(3, 12), (4, 9), (6, 10), (2, 15), (8, 6), (5, 12)])
        w2 = rng.choice([x for x in (2, 3, 4, 6, 8, 10, 12) if x != w])
        q = (f"If {w} painters can paint a house in {d} days, how many days would {w2} painters need, "
             f"working at the same speed?")
    elif k == 6:
        a, diff = rng.randint(5, 40), rng.randint(2, 30)
        yrs = rng.randint(2, 15)
        q = f"{n} is {diff} years older than {n2}. {n2} is {a} years old. How old will {n} be in {yrs} years?"
    elif k == 7:
        xs = [rng.randint(50, 100) for _ in range(rng.randint(3, 6))]
        q = f"{n} scored {', '.join(map(str, xs[:-1]))} and {xs[-1]} in {len(xs)} tests. What is the average score?"
    elif k == 8:
        p, r, y = rng.choice([500, 1000, 1200, 2000, 5000]), rng.choice([2, 3, 4, 5, 6]), rng.randint(2, 6)
        q = f"How much simple interest does {p} euros earn at {r} percent per year over {y} years?"
    elif k == 9:
        serv, flour, serv2 = rng.choice([(4, 200, 6), (2, 150, 5), (6, 450, 4), (8, 600, 12), (3, 180, 9)])
        q = (f"A recipe for {serv} people needs {flour} grams of flour. How much flour is needed for {serv2} people?")
    elif k == 10:
        h, m = rng.randint(6, 20), rng.choice([0, 10, 15, 20, 30, 40, 45, 50])
        dur = rng.randint(35, 250)
        q = (f"A film starts at {h}:{m:02d} and lasts {dur} minutes. At what time does it end?")
    elif k == 11:
        a, b = rng.randint(12, 99), rng.randint(11, 99)
        op = rng.choice(["multiply", "add"])
        q = (f"Calculate {a} times {b} without a calculator." if op == "multiply"
             else f"What is {a * 7} plus {b * 13}? Explain how you add the numbers.")
    elif k == 12:
        price, off = rng.choice([40, 60, 80, 120, 250, 90]), rng.choice([10, 15, 20, 25, 30, 50])
        q = f"A jacket costs {price} dollars and is on sale for {off} percent off. What is the sale price?"
    else:
        boxes, per, extra = rng.randint(3, 12), rng.randint(4, 24), rng.randint(1, 9)
        q = (f"There are {boxes} boxes with {per} {items} in each box, and {extra} more {items} on the table. "
             f"How many {items} are there in total?")
    return (q + " " + ask).strip()


def _chat(rng: random.Random) -> str:
    k = rng.randrange(10)
    if k == 0:
        return f"Write a {rng.choice(FORMS)} about {rng.choice(TOPICS)}."
    if k == 1:
        return f"Give me {rng.choice(['three', 'four', 'five', 'six', 'seven'])} tips for {rng.choice(ACTIVITIES)}."
    if k == 2:
        return f"Describe {rng.choice(SCENES)} in about {rng.choice([50, 80, 100, 120, 150])} words."
    if k == 3:
        tail = rng.choice(["Answer with two lists.", "Be balanced.", "Keep it short.", ""])
        return f"What are the advantages and disadvantages of {rng.choice(PROCON)}? {tail}".strip()
    if k == 4:
        tone = rng.choice(["short, friendly", "polite", "cheerful", "brief", "warm"])
        return (f"Write a {tone} {rng.choice(['email', 'message', 'note'])} to {rng.choice(RECIPIENTS)} "
                f"inviting them to {rng.choice(OCCASIONS)} on {rng.choice(['Friday evening', 'Sunday morning', 'next Saturday', 'the first of June'])}.")
    if k == 5:
        return f"Explain to a {rng.choice(['six', 'seven', 'eight', 'nine', 'twelve'])} year old {rng.choice(KID_QUESTIONS)}."
    if k == 6:
        return (f"I want to get better at {rng.choice(ACTIVITIES)}. Can you make me a simple plan for the next "
                f"{rng.choice(['week', 'two weeks', 'month'])}?")
    if k == 7:
        return f"Write a short story for children about {rng.choice(TOPICS)}."
    if k == 8:
        return (f"Suggest {rng.choice(['three', 'five', 'ten'])} names for {rng.choice(['a coffee shop', 'a bakery', 'a podcast about science', 'a hiking club', 'a pet rabbit', 'a board game', 'a bookshop'])} and explain each one briefly.")
    return f"How can I {rng.choice(['politely decline an invitation', 'apologise to a friend', 'ask my manager for a day off', 'thank a teacher', 'welcome a new colleague'])}? Give me an example message."


def _code(rng: random.Random, funcs: list) -> str:
    k = rng.randrange(8)
    if k <= 2 and funcs:
        module, qual, _, doc, src = rng.choice(funcs)
        ask = rng.choice(["Explain what it does in a few sentences.", "Add type hints to it.",
                          "Write two unit tests for it with pytest.", "Rewrite it to make it easier to read.",
                          "What are its inputs and outputs?", "Could it raise an exception? When?",
                          "Translate it to JavaScript."])
        return f"Here is a Python function from the {module} module:\n\n{src}\n\n{ask}"
    if k == 3 and funcs:
        module, qual, _, doc, _ = rng.choice(funcs)
        return (f"Write a Python function named {qual.split('.')[-1]} that does the following: "
                f"{_first_sentence(doc)} Include a docstring and a short usage example.")
    if k == 4:
        name, methods = rng.choice(DATA_STRUCTURES)
        lang = rng.choice(["Python", "Java", "C++", "TypeScript"])
        return f"Write a {lang} class named {name} with {methods} methods, and a short example of using it."
    if k == 5:
        return f"Write a SQL query that {rng.choice(SQL_TASKS)}."
    lang = rng.choice(LANGS)
    extra = rng.choice(["", " Add comments.", " Then show how to call it.", " Include a small test.",
                        " Explain its time complexity."])
    return f"Write a {lang} function that {rng.choice(CODE_TASKS)}.{extra}"


SUMMARY_HEADERS = ["Summarize the following text in two or three sentences.",
                   "Summarize the following text in one sentence.",
                   "Write a short summary of the text below.",
                   "Give a brief summary (at most 50 words) of this passage.",
                   "Summarize the main points of the following documentation as a bulleted list.",
                   "Read the text and summarize it for a beginner.",
                   "TL;DR of the following text, please."]


def _summarize(rng: random.Random, passages: list) -> str:
    if rng.random() < 0.45:
        text = _everyday_paragraph(rng)
    else:
        _, text = rng.choice(passages)
    return f"{rng.choice(SUMMARY_HEADERS)}\n\n{text}"


def _qa(rng: random.Random, items: list) -> str:
    k = rng.randrange(8)
    if k == 0:
        return f"What is {rng.choice(CONCEPTS)}? {rng.choice(['Explain it in simple words.', 'Give a short answer.', 'Give an example.', ''])}".strip()
    if k == 1:
        a, b = rng.choice(PAIRS)
        return f"What is the difference between {a} and {b}?"
    if k == 2:
        return f"Why {rng.choice(WHY)}?"
    if k == 3:
        return rng.choice(FACTS)
    module, qual, kind, doc, _ = rng.choice(items)
    if kind == "module":
        return f"What is Python's {module} module used for? Give an example."
    what = "class" if kind == "class" else "function"
    return rng.choice([f"What does the {what} {qual} in Python's {module} module do?",
                       f"When would I use {module}.{qual} in Python?",
                       f"How do I use {qual} from the {module} module? Show a short example."])


RAG_HEADER = "Answer the question using only the information in the context."


def _rag(rng: random.Random, passages: list) -> str:
    if rng.random() < 0.5:
        notice, questions = _notice(rng)
        return f"{RAG_HEADER}\n\nContext: {notice}\n\nQuestion: {rng.choice(questions)}"
    title, text = rng.choice(passages)
    q = rng.choice([f"What does the context say about {title}?", "What is the main purpose described here?",
                    "Which conditions or exceptions are mentioned?", "What happens by default?",
                    "Summarise what the context says in one sentence.", "What values or arguments are mentioned?"])
    header = rng.choice([RAG_HEADER, "Use the context below to answer the question. If the answer is not in "
                         "the context, say so."])
    return f"{header}\n\nContext: {text}\n\nQuestion: {q}"


FACILITIES = ["public library", "swimming pool", "bike repair shop", "community garden", "dental practice",
              "science museum", "ferry service", "climbing gym", "farmers' market", "youth orchestra",
              "night bus", "language school", "animal shelter", "ice rink", "campsite", "bakery"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _notice(rng: random.Random) -> tuple[str, list[str]]:
    """A notice about a facility with random details, and questions it answers."""
    fac, town = rng.choice(FACILITIES), rng.choice(TOWNS)
    o, c = rng.randint(6, 10), rng.randint(4, 9)
    closed = rng.choice(DAYS)
    price, child = rng.randint(3, 25), rng.choice(["under five", "under twelve", "under sixteen"])
    book = rng.choice(["online", "by phone", "at the front desk", "through the app"])
    rule = rng.choice(["Dogs are not allowed inside.", "Bags must be left in the lockers.",
                       "Food and drinks may not be taken inside.", "Visitors must sign in at reception.",
                       "Phones must be switched to silent."])
    event = rng.choice(["a free open day", "a workshop for beginners", "a summer festival", "a charity evening"])
    month = rng.choice(["March", "April", "May", "June", "September", "October"])
    parking = rng.choice(["free parking behind the building", "no parking, but a bus stop at the door",
                          "paid parking for up to three hours"])
    sentences = [f"The {town} {fac} is open from {o} in the morning to {c} in the evening, every day except {closed}.",
                 f"A regular ticket costs {price} euros, and children {child} go free.",
                 f"Places can be booked {book}.", rule,
                 f"In {month} there will be {event}.", f"There is {parking}."]
    head, tail = sentences[:1], sentences[1:]
    rng.shuffle(tail)
    text = " ".join(head + tail[:rng.randint(3, 5)])
    questions = [f"When is the {fac} closed?", "How much does a regular ticket cost?",
                 "Do children have to pay?", "How can places be booked?", f"What happens in {month}?",
                 "Where can visitors park?", f"Can I visit on {closed}?", "What time does it open?"]
    return text, questions


def _everyday_paragraph(rng: random.Random) -> str:
    """A news-like paragraph of 5-7 sentences with random details."""
    town, fac = rng.choice(TOWNS), rng.choice(FACILITIES)
    n1, n2, yrs = rng.randint(3, 40), rng.randint(50, 900), rng.randint(2, 30)
    who = rng.choice(["volunteers", "local families", "students", "retired teachers", "shop owners"])
    pool = [f"The {fac} in {town} was started {yrs} years ago by {n1} {who}.",
            f"Today it serves about {n2} people every month.",
            f"At first there was only {rng.choice(['one small room', 'a borrowed van', 'a single table', 'an old shed'])}, "
            f"and everything depended on donations.",
            f"Last year the town council agreed to pay for {rng.choice(['a new roof', 'longer opening hours', 'two part-time staff', 'better heating'])}.",
            f"Not everyone was happy: some residents complained about {rng.choice(['noise in the evenings', 'the cost', 'the lack of parking', 'the queues on weekends'])}.",
            f"The organisers answered by {rng.choice(['holding public meetings', 'changing the timetable', 'opening a second site', 'asking for feedback online'])}.",
            f"A survey in {rng.choice(['spring', 'autumn', 'January', 'July'])} found that {rng.randint(55, 95)} percent of users were satisfied.",
            f"The next goal is to {rng.choice(['reach more older people', 'become fully self-funded', 'offer classes for children', 'cut energy use by half'])} within {rng.randint(2, 5)} years."]
    keep = pool[:2] + rng.sample(pool[2:], rng.randint(3, 5))
    return " ".join(keep)


# ------------------------------------------------------------------------------ the set


def read_dev_prompts(path=DEV_PROMPTS) -> list[str]:
    """Every turn of every evaluation prompt (the texts no training prompt may equal or contain)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the evaluation prompts are needed to keep them out of training")
    return [t for line in path.read_text().splitlines() if line.strip() for t in json.loads(line)["turns"]]


def contains_eval_prompt(text: str, dev: list[str]) -> bool:
    return any(d.strip() and d.strip() in text for d in dev)


def build_prompt_set(seed: int = 0, counts: dict | None = None, dev_path=DEV_PROMPTS) -> list[dict]:
    """[{"id", "category", "text"}]: distinct prompts, shuffled by `seed`."""
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    rng = random.Random(seed)
    items = list(stdlib_items())
    funcs = [x for x in items if x[4]]
    passages = list(doc_passages())
    dev = read_dev_prompts(dev_path)
    makers = {"chat": lambda: _chat(rng), "code": lambda: _code(rng, funcs),
              "summarize": lambda: _summarize(rng, passages), "qa": lambda: _qa(rng, items),
              "math": lambda: _math(rng), "rag": lambda: _rag(rng, passages)}
    seen: set[str] = set()
    out = []
    for cat in CATEGORIES:
        made, tries = 0, 0
        while made < counts.get(cat, 0) and tries < 50 * counts[cat]:
            tries += 1
            text = makers[cat]().strip()
            if text in seen or contains_eval_prompt(text, dev):
                continue
            seen.add(text)
            made += 1
            out.append({"id": f"{cat}-{made:05d}", "category": cat, "text": text})
    rng.shuffle(out)
    bad = [p["id"] for p in out if contains_eval_prompt(p["text"], dev)]
    assert not bad, f"training prompts contain evaluation prompts: {bad[:5]}"
    return out


def split_heldout(prompts: list[dict], fraction: float = 0.05) -> tuple[list[dict], list[dict]]:
    """(train, heldout): every round(1/fraction)-th prompt of the shuffled set is held out."""
    if fraction <= 0:
        return list(prompts), []
    step = max(2, round(1 / fraction))
    held = [p for i, p in enumerate(prompts) if i % step == step - 1]
    train = [p for i, p in enumerate(prompts) if i % step != step - 1]
    return train, held


# ------------------------------------------------------------------------------ chat rendering


def default_system_of(template: str) -> str | None:
    """The literal default system message of a ChatML template, found as
    include/specdec/tokenizer/chat_template.hpp finds it: the text of a Jinja string literal between
    "<|im_start|>system" plus a newline (or the two characters backslash-n) and "<|im_end|>", skipping
    bodies built from expressions (quotes or braces)."""
    open_tag, close_tag = "<|im_start|>system", "<|im_end|>"
    at = template.find(open_tag)
    while at != -1:
        begin = at + len(open_tag)
        if template[begin:begin + 1] == "\n":
            begin += 1
        elif template[begin:begin + 2] == "\\n":
            begin += 2
        else:
            at = template.find(open_tag, at + 1)
            continue
        end = template.find(close_tag, begin)
        if end == -1:
            return None
        body = template[begin:end]
        if body and not any(c in body for c in "'\"{}"):
            return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)
        at = template.find(open_tag, at + 1)
    return None


def render_chatml(user: str, system: str | None) -> str:
    """One user turn and the assistant's opening, as the C++ chat_template::apply renders it."""
    out = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
    return out + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


class ChatRenderer:
    """Renders a user prompt with the model's ChatML template and tokenizes it with the repo's
    reference tokenizer (tools/reference/tokenizer_fixtures.py), special tokens parsed, no BOS added:
    the ids the C++ programs feed for the same prompt."""

    def __init__(self, model_path):
        sys.path.insert(0, str(REPO / "tools" / "reference"))
        from tokenizer_fixtures import reference_tokenizers

        _, tokenizer_dict, extras, reference, _ = reference_tokenizers(Path(model_path))
        template = extras["chat_template"]
        if "<|im_start|>" not in template:
            raise ValueError(f"{model_path}: the chat template is not ChatML")
        self.template = template
        self.system = default_system_of(template)
        self.tokenizer = reference
        self.tokens = tokenizer_dict["tokens"]
        self.eos_id = tokenizer_dict.get("eos_token_id")
        self.special_names = {name: self.tokens[tokenizer_dict[key]] for name, key in
                              (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"))
                              if tokenizer_dict.get(key) is not None}

    def render(self, user: str) -> str:
        return render_chatml(user, self.system)

    def encode(self, user: str) -> list[int]:
        return self.tokenizer.encode(self.render(user), add_special_tokens=False).ids

    def encode_plain(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def stop_ids(self) -> set[int]:
        """End-of-turn tokens: the eos id and <|im_end|> / <|endoftext|> where the vocabulary has them."""
        out = {self.eos_id} if self.eos_id is not None else set()
        for name in ("<|im_end|>", "<|endoftext|>"):
            if name in self.tokens:
                out.add(self.tokens.index(name))
        return out

    def check_against_jinja(self, user: str) -> None:
        """Asserts that render() equals the template rendered by jinja2 (as transformers does)."""
        from tokenizer_fixtures import render_chat

        want = render_chat(self.template, [{"role": "user", "content": user}], True, self.special_names)
        got = self.render(user)
        if want != got:
            raise AssertionError(f"ChatML rendering differs from the model's template:\n{got!r}\n{want!r}")


def main() -> int:
    import argparse
    from collections import Counter

    ap = argparse.ArgumentParser(description="Builds the PPD training prompt set and prints statistics.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dump", type=Path, help="write the prompts as JSON lines here")
    ap.add_argument("--show", type=int, default=0, help="print this many prompts")
    args = ap.parse_args()
    prompts = build_prompt_set(args.seed)
    train, held = split_heldout(prompts)
    print(f"{len(prompts)} prompts ({len(train)} train, {len(held)} held out): "
          f"{dict(Counter(p['category'] for p in prompts))}; {len(stdlib_items())} stdlib items, "
          f"{len(doc_passages())} passages (Python {sys.version.split()[0]})")
    for p in prompts[:args.show]:
        print(f"--- {p['id']}\n{p['text']}")
    if args.dump:
        args.dump.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
