"""How perfgate writes changes and durations, everywhere it writes them."""

from __future__ import annotations


def format_change(ratio: float, digits: int = 2) -> str:
    """1.15 -> '+15%', 0.9 -> '-10%', 1.075 -> '+7.5%' (at most ``digits`` decimals)."""
    percent = (ratio - 1.0) * 100.0
    text = f"{percent:+.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def format_duration(ns: float | None) -> str:
    """3 significant digits in a readable unit: 850 ns, 10.9 us, 12.3 ms, 1.23 s."""
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"
