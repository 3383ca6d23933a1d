"""Masking benchmark: ``mask_text`` on hostile and ordinary texts of 16k to 1M characters.

    .venv/bin/python bench/masking_bench.py            # a few seconds
    .venv/bin/python bench/masking_bench.py --old-budget 30    # let the old pattern run longer

For each kind of text it prints the milliseconds ``mask_text`` takes at each size (the fastest of
five runs, or one when slow), the same for the pattern masking used before (``[local]+@domain`` tried at every
position: quadratic), and the new masking's growth from 256k to 1M characters: about 4 when
linear, 16 when quadratic. The old pattern is only run while its projected time stays under
``--old-budget`` seconds (1 by default; 16 times the time of the size before, or as it grew). Then it times
``shown_text`` (what a page shows) on each 1M text: bounded, whatever the text.

Exits 1 when the new masking grows by 8 or more from 256k to 1M characters on any text.
"""

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifwatch.accounts.masking import (  # noqa: E402
    mask_phone,
    mask_recipient,
    mask_text,
    shown_text,
)

SIZES = (16_384, 65_536, 262_144, 1_048_576)
LINEAR_AT_MOST = 8  # growth from 256k to 1M characters: 4 when linear, 16 when quadratic

OLD_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
OLD_PHONE = re.compile(r"(?<![\w+])\+\d[\d ().-]{5,}\d(?!\d)")


def old_mask_text(text: str) -> str:
    text = OLD_ADDRESS.sub(lambda m: mask_recipient(m.group()), text)
    return OLD_PHONE.sub(lambda m: mask_phone(m.group()), text)


def repeated(piece: str) -> Callable[[int], str]:
    return lambda size: (piece * (size // len(piece) + 1))[:size]


TEXTS: dict[str, Callable[[int], str]] = {
    # The issue's: one run of word characters (a field's value, base64, a token).
    "word characters": repeated("a"),
    "plus and digits": repeated("+1"),
    "dots": repeated("a."),
    "run, @, no domain": lambda size: "a" * (size - 3) + "@b.",
    "run, then an address": lambda size: "a" * (size - 12) + "@example.com",
    "addresses back to back": repeated("a@b.cc+"),
    "phone numbers": repeated("+1 415 555 0118, "),
    "bounce messages": repeated("550 5.1.1 <ana.ruiz@example.com>: no such user; "),
}


def best_ms(mask: Callable[[str], str], text: str) -> float:
    """The fastest of five runs (the least disturbed by other work), or one run when slow."""
    times: list[float] = []
    while len(times) < 5 and sum(times) < 0.3:
        start = time.perf_counter()
        mask(text)
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def projected_ms(times: list[float]) -> float:
    """The next size's time (4 times as long a text): grown as from the size before, else 16x."""
    if len(times) < 2:
        return times[-1] * 16
    return times[-1] * max(4, times[-1] / max(times[-2], 1e-6))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--old-budget",
        type=float,
        default=1.0,
        help="seconds the old pattern may be projected to take at a size (default 1)",
    )
    args = parser.parse_args(argv)

    sizes = "".join(f"{size // 1024:>9}k" for size in SIZES)
    print(f"{'ms per call':<24}{'':>5}{sizes}   growth 256k→1M")
    failed = []
    for name, make in TEXTS.items():
        new = [best_ms(mask_text, make(size)) for size in SIZES]
        old: list[float | None] = []
        for size in SIZES:
            if old and (old[-1] is None or projected_ms(old) / 1000 > args.old_budget):
                old.append(None)
            else:
                old.append(best_ms(old_mask_text, make(size)))
        growth = new[-1] / max(new[-2], 1e-6)
        if growth >= LINEAR_AT_MOST:
            failed.append(name)
        print(f"{name:<24}{'new':>5}" + "".join(f"{ms:>10.1f}" for ms in new) + f"   {growth:.1f}")
        shown = "".join(f"{ms:>10.1f}" if ms is not None else f"{'—':>10}" for ms in old)
        print(f"{'':<24}{'old':>5}{shown}")

    print()
    print("shown_text on each 1M text (what a page shows: masked, ~2,000 characters):")
    for name, make in TEXTS.items():
        text = make(SIZES[-1])
        ms = best_ms(lambda text: shown_text(text, personal=False), text)
        print(f"  {name:<24}{ms:>8.2f} ms")

    if failed:
        print(f"\nNOT LINEAR: {', '.join(failed)} grew {LINEAR_AT_MOST}x or more")
        return 1
    print(f"\nlinear: every text grew less than {LINEAR_AT_MOST}x from 256k to 1M characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
