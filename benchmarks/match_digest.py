"""A digest of everything 3,000 single matches return, to show a change to the engine changed
no result.

Matches the benchmark's 200 programs (seed 7) against 1,500 appraisals of each of two case seeds
(8 and 11), with LTV curves on two of every three, and hashes each result's ``model_dump()`` as
JSON, every outcome's rule, status, code, sentence and sorted parameters, and the Python type of
every field. Run it in two checkouts and compare the lines (about 90 s each):

    .venv/bin/python benchmarks/match_digest.py

From ``2666c7e`` to ``7620428`` every engine change left it at
``1f6097aa8e5cf80238e938267e14af4b31634111eec6f58487604db1880f784f``. The seventh session's
correctness fixes changed results on purpose (the residual rule's month 0 exactly the LTV at
signing, the maximum amount that passes payment-to-income after rounding, percent limits exact to
the cent, no "None" in sentences): since then it is
``e71fc3f6fce2854934029d8dfe829f27524ce1e394c2dd84e408981c3af824fd``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import date

from gateway.matching import compile_programs, match
from gateway.matching.synthetic import synthetic_cases, synthetic_programs

AS_OF = date(2026, 3, 1)


def digest(cases: int = 1500) -> str:
    programs = compile_programs(synthetic_programs(200, seed=7, as_of=AS_OF))
    h = hashlib.sha256()
    for seed in (8, 11):
        collaterals, requests = synthetic_cases(cases, seed=seed)
        for k in range(cases):
            curve = k % 3 != 2
            for r in match(collaterals[k], requests[k], programs, as_of=AS_OF, with_curve=curve):
                dumped = r.model_dump()
                h.update(json.dumps(dumped, sort_keys=True, default=repr).encode())
                h.update(
                    repr(
                        [
                            (o.rule, o.status, o.code, o.message, sorted(o.params.items()))
                            for o in r.outcomes
                        ]
                    ).encode()
                )
                h.update(repr([type(v).__name__ for v in dumped.values()]).encode())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1500, help="appraisals per case seed")
    parser.add_argument("--quick", action="store_true", help="a smoke run (50 cases a seed)")
    args = parser.parse_args(argv)
    print(digest(50 if args.quick else args.cases))
    print("reproduce: .venv/bin/python benchmarks/match_digest.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
