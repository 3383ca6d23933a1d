"""The reliability suite: `.venv/bin/python -m bench.reliability CHECK [--quick] [options]`.

CHECK is replay, outage, fuzz, kill, access, or all (each in its own process, one after the
other). Each check prints its figures and a last line `<check>: PASS|FAIL ...`; the exit status
is non-zero when any check failed. See bench/reliability/README.md.
"""

import importlib
import subprocess
import sys
import time

CHECKS = ("replay", "outage", "fuzz", "kill", "access")
USAGE = (
    "usage: python -m bench.reliability {replay|outage|fuzz|kill|access|all} [--quick] "
    "[options]\n       python -m bench.reliability CHECK --help   (a check's options)"
)


def run_check(name: str, argv: list[str]) -> int:
    # Imported only when asked for: a check's module may be missing in an older checkout.
    module = importlib.import_module(f"bench.reliability.{name}")
    return module.main(argv)


def run_all(argv: list[str]) -> int:
    """Every check in a process of its own (each sets up Django on its own database)."""
    summaries = []
    failed = 0
    for name in CHECKS:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        process = subprocess.run(
            [sys.executable, "-m", "bench.reliability", name, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sys.stdout.write(process.stdout)
        last = [line for line in process.stdout.splitlines() if line.startswith(f"{name}:")]
        took = time.monotonic() - started
        summary = last[-1] if last else f"{name}: FAIL exit status {process.returncode}"
        if process.returncode != 0:
            failed += 1
            if "FAIL" not in summary:
                summary = f"{name}: FAIL exit status {process.returncode} ({summary})"
        summaries.append(f"{summary}  [{took:.0f} s]")
    print("\n== summary")
    for line in summaries:
        print(line)
    print(f"all: {'FAIL' if failed else 'PASS'} {len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        return run_all(rest)
    if name not in CHECKS:
        print(USAGE, file=sys.stderr)
        return 2
    return run_check(name, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
