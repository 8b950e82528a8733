"""Long fuzz run of every annotation parser and writer; prints cases run and failures per parser.

    python tests/tools/fuzz_parsers.py --cases 10000          # >= 10,000 cases per parser
    python tests/tools/fuzz_parsers.py --cases 500 --only coco dlib_xml --save-failures /tmp/fz

Per parser, the cases are split between four properties (the same checks and strategies as
tests/test_fuzz.py, see tests/_fuzz_helpers.py):

- roundtrip  random valid annotation sets: write, read back, must be equal bit for bit
- real       mutated seed files (real ../shared/data files where present, and synthetic ones)
- written    mutated files freshly written from random valid sets
- junk       random bytes and "token soup" of the format's own syntax

Every case must end in facelm's own error (a FacelmError subclass) or a set that writes and reads
back unchanged. Unlike a hypothesis test this does not stop at the first failure: it counts them all
(by exception type) and can save each failing input. Exit status 1 if any case failed.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]  # tests/ (for _fuzz_helpers) and the repo

import warnings  # noqa: E402

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from _fuzz_helpers import (TARGETS, VALID_SETS, check_bytes, check_round_trip, junk, mutated_seeds,  # noqa: E402
                           mutated_written, run_guarded)

SHARES = {"roundtrip": 0.25, "real": 0.35, "written": 0.2, "junk": 0.2}


def run(name: str, prop: str, n: int, failures: list, outcomes: collections.Counter, save: Path | None) -> int:
    target = TARGETS[name]
    strategy = {"roundtrip": VALID_SETS[name], "real": mutated_seeds(name), "written": mutated_written(name),
                "junk": junk(name)}[prop]
    count = 0

    # Generation only: nothing raises inside (findings are recorded), so there is nothing to shrink.
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def case(x):
        nonlocal count
        count += 1
        if prop == "roundtrip":
            err = run_guarded(lambda: check_round_trip(target, x))
        else:
            result = {}
            err = run_guarded(lambda: result.setdefault("r", check_bytes(target, x)))
            if err is None:
                outcomes[result["r"]] += 1
        if err is not None:
            failures.append((prop, type(err).__name__, str(err)[:300]))
            if save is not None:
                folder = save / name
                folder.mkdir(parents=True, exist_ok=True)
                stem = folder / f"{prop}-{len(failures):04d}-{type(err).__name__}"
                if isinstance(x, bytes):
                    stem.with_suffix(target.suffix).write_bytes(x)
                stem.with_suffix(".txt").write_text(f"{type(err).__name__}: {err}\n\n{x!r}"[:200000])

    case()
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10000, help="cases per parser (default 10000)")
    ap.add_argument("--only", nargs="*", choices=list(TARGETS), help="only these parsers")
    ap.add_argument("--save-failures", type=Path, help="write each failing input here")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    names = args.only or list(TARGETS)
    print(f"fuzzing {len(names)} parsers, {args.cases} cases each (pid {os.getpid()})", flush=True)
    print(f"{'parser':<14} {'cases':>7} {'failures':>8} {'refused':>8} {'read':>6} {'seconds':>8}  by property",
          flush=True)
    total_cases = total_fail = 0
    start_all = time.time()
    all_failures = {}
    for name in names:
        start = time.time()
        failures: list = []
        outcomes: collections.Counter = collections.Counter()
        cases = 0
        per_prop = {}
        for prop, share in SHARES.items():
            n = max(1, round(args.cases * share))
            c = run(name, prop, n, failures, outcomes, args.save_failures)
            per_prop[prop] = c
            cases += c
        total_cases += cases
        total_fail += len(failures)
        all_failures[name] = failures
        props = " ".join(f"{p}={c}" for p, c in per_prop.items())
        read = outcomes["read"] + outcomes["read, not writable"]
        print(f"{name:<14} {cases:>7} {len(failures):>8} {outcomes['refused']:>8} {read:>6} "
              f"{time.time() - start:>8.1f}  {props}", flush=True)
    print(f"{'total':<14} {total_cases:>7} {total_fail:>8} {'':>8} {'':>6} {time.time() - start_all:>8.1f}")
    for name, failures in all_failures.items():
        kinds = collections.Counter((p, t) for p, t, _ in failures)
        for (prop, kind), n in kinds.most_common():
            example = next(m for p, t, m in failures if (p, t) == (prop, kind))
            print(f"  {name} {prop}: {n} x {kind}: {example}")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
