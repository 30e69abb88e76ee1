"""Two-step arithmetic word problems with worked solutions, as a team's own file would hold them.

    python examples/word-problems/make_data.py                 # -> examples/word-problems/problems.jsonl
    python examples/word-problems/make_data.py --rows 3000 --out my.jsonl

One JSON object a line: ``problem`` (the question), ``solution`` (a worked solution, two steps) and
``answer`` (a number). The answer needs a product and then a sum or a difference: a composition a
student can write out step by step but must otherwise do in its head.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jae", "Kai", "Lena", "Mo", "Nia", "Omar", "Pia")
THINGS = (("boxes", "pens"), ("bags", "apples"), ("crates", "bottles"), ("packs", "cards"), ("trays", "cups"), ("shelves", "books"))


def problem(rng: random.Random) -> dict:
    name, (holders, items) = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    product = a * b
    c = rng.randint(1, min(9, product - 1))  # nothing negative is left
    if rng.random() < 0.5:
        question = f"{name} has {a} {holders} with {b} {items} in each and gives away {c} {items}. How many {items} are left?"
        step, answer = f"After giving away {c}, {product} - {c} = {product - c} {items} are left.", product - c
    else:
        question = f"{name} has {a} {holders} with {b} {items} in each and gets {c} more {items}. How many {items} are there now?"
        step, answer = f"With {c} more, {product} + {c} = {product + c} {items}.", product + c
    solution = f"First, {a} {holders} of {b} {items} are {a} * {b} = {product} {items}. Then {step[0].lower()}{step[1:]}"
    return {"problem": question, "solution": solution, "answer": answer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("problems.jsonl"))
    args = parser.parse_args()
    rng, seen, rows = random.Random(args.seed), set(), []
    while len(rows) < args.rows:
        row = problem(rng)
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append(row)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{len(rows)} problems in {args.out}")


if __name__ == "__main__":
    main()
