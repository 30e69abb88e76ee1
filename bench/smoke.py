"""``--smoke`` for every bench: tiny sizes that run the same code path in seconds, so that the test
suite (tests/integration/test_benches.py) runs each bench and a bench never stops working unnoticed.

    args = parse_args(parser, smoke={"requests": 40, "concurrency": [8]})

Sizes given on the command line win over the smoke sizes. A smoke run's figures mean nothing; its
RESULT line only shows that the bench still runs to the end.
"""

from __future__ import annotations

import argparse


def parse_args(parser: argparse.ArgumentParser, smoke: dict) -> argparse.Namespace:
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds: the same code path, for the test suite")
    smoke_run, _ = parser.parse_known_args()
    if smoke_run.smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args()
