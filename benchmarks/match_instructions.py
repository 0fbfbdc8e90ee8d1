"""Instructions per single match for the slowest appraisals, counted by valgrind (callgrind).

Wall time on a shared two-core machine swings by a third from run to run; instruction counts do
not, so changes to the single-match path are compared with this. The appraisals are the eight
slowest of the 500 that ``benchmarks/match.py`` times (same programs and cases: seeds 7 and 8):
each fails most of the 200 programs on several rules, each outcome with its own sentence.

The script runs itself twice under ``valgrind --tool=callgrind``, once building everything and
matching nothing and once also matching the eight, and prints the difference per match. Needs
valgrind (``apt-get install valgrind``); takes about a minute. It runs under the gateway
process's collector policy (``gateway.gc_policy``), as ``benchmarks/match.py`` does;
``--default-gc`` counts under Python's default thresholds, as counts before 29 November's sixth
session were made.

    .venv/bin/python benchmarks/match_instructions.py

``--profiles DIR`` keeps both profiles; ``callgrind_annotate`` of each, the difference divided by
eight, shows where a match's instructions go (by C function: numpy's, the interpreter's):

    .venv/bin/python benchmarks/match_instructions.py --profiles var/profiles

``--loop SECONDS`` matches the eight again and again instead, to be sampled by a profiler:

    py-spy record -r 500 -- .venv/bin/python benchmarks/match_instructions.py --loop 25
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _callgrind import have_valgrind, instructions

AS_OF = date(2026, 3, 1)
SLOWEST = (173, 459, 472, 470, 100, 177, 267, 476)


def _workload(match_them: bool, seconds: float = 0.0, *, default_gc: bool = False) -> None:
    from gateway.gc_policy import settle_after_startup
    from gateway.matching import compile_programs, match
    from gateway.matching.synthetic import synthetic_cases, synthetic_programs

    programs = compile_programs(synthetic_programs(200, seed=7, as_of=AS_OF))
    collaterals, requests = synthetic_cases(500, seed=8)
    gc.collect()
    if default_gc:
        gc.freeze()  # Python's default thresholds (how counts before the sixth session were made)
    else:
        settle_after_startup()  # the gateway process's collector policy, as benchmarks/match.py
    match(collaterals[0], requests[0], programs, as_of=AS_OF, with_curve=True)  # warm
    end = time.monotonic() + seconds
    while match_them:
        for k in SLOWEST:
            match(collaterals[k], requests[k], programs, as_of=AS_OF, with_curve=True)
        match_them = time.monotonic() < end


def _instructions(match_them: bool, out_dir: Path, extra: list[str]) -> int:
    workload = "match" if match_them else "build"
    return instructions(
        __file__, ["--workload", workload, *extra], out_dir / f"callgrind.{workload}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["build", "match"], help=argparse.SUPPRESS)
    parser.add_argument("--loop", type=float, metavar="SECONDS", help="match for this long")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: match the eight once, no valgrind"
    )
    parser.add_argument(
        "--default-gc", action="store_true", help="Python's default collector thresholds"
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        metavar="DIR",
        help="keep valgrind's profiles there (callgrind.build, callgrind.match)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        _workload(True)
        print("matched the eight slowest appraisals once (no count: run without --quick)")
        return 0
    if args.loop is not None:
        _workload(True, args.loop)
        return 0
    if args.workload:
        _workload(args.workload == "match", default_gc=args.default_gc)
        return 0
    if not have_valgrind():
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        profiles = args.profiles or Path(tmp)
        profiles.mkdir(parents=True, exist_ok=True)
        extra = ["--default-gc"] if args.default_gc else []
        base = _instructions(False, profiles, extra)
        total = _instructions(True, profiles, extra)
    per_match = (total - base) / len(SLOWEST) / 1e6
    print(
        f"single match, the {len(SLOWEST)} slowest appraisals: {per_match:.2f} M instructions each"
    )
    flag = " --default-gc" if args.default_gc else ""
    print(f"reproduce: .venv/bin/python benchmarks/match_instructions.py{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
