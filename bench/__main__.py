"""`python -m bench [NAME …]`: run registered benchmarks and print a table."""

from __future__ import annotations

import argparse
import importlib
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from bench import BENCHMARKS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: {BENCHMARKS})")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(BENCHMARKS)}")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()

    failed = False
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n== {name} ==")
        print(f"{'case':<52} {'µs/call':>9} {'baseline':>9} {'ratio':>7}  budget")
        for result in module.run():
            baseline = f"{result.baseline_us:9.2f}" if result.baseline_us else f"{'':>9}"
            ratio = f"{result.ratio:6.1f}x" if result.ratio else f"{'':>7}"
            budget = ""
            if result.limit_us is not None:
                budget = f"≤ {result.limit_us:g} µs " + ("OVER" if result.over_limit else "ok")
                failed |= result.over_limit
            print(f"{result.name:<52} {result.us_per_call:9.2f} {baseline} {ratio}  {budget}")
            if result.note:
                print(f"    {result.note}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
