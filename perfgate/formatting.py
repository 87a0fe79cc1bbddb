"""How perfgate writes changes and durations, everywhere it writes them."""

from __future__ import annotations


def format_change(ratio: float, digits: int = 2) -> str:
    """1.15 -> '+15%', 0.9 -> '-10%', 1.075 -> '+7.5%' (at most ``digits`` decimals)."""
    percent = (ratio - 1.0) * 100.0
    text = f"{percent:+.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def _scaled(value: float | None, units: tuple[tuple[str, float], ...], template: str) -> str:
    """``value`` in the largest of ``units`` it reaches (the last one is the fallback), 3 significant digits."""
    if value is None:
        return "-"
    index = next((index for index, (_, scale) in enumerate(units) if abs(value) >= scale), len(units) - 1)
    # 999.9 us is 1e+03 us at 3 digits: one unit up it is '1 ms' (1023.9 bytes: '1 KiB')
    if index > 0 and abs(float(f"{value / units[index][1]:.3g}")) >= 1000:
        index -= 1
    unit, scale = units[index]
    return template.format(number=f"{value / scale:.3g}", unit=unit)


def format_duration(ns: float | None) -> str:
    """850 ns, 10.9 us, 12.3 ms, 1.23 s."""
    return _scaled(ns, (("s", 1e9), ("ms", 1e6), ("us", 1e3), ("ns", 1.0)), "{number} {unit}")


def format_seconds(seconds: float | None) -> str:
    """A span of wall-clock time: 0.012 -> '12 ms', 1.94 -> '1.94 s', 61.04 -> '61 s'. A
    short run's 12 ms of measuring is never written '0.0 s'."""
    return format_duration(None if seconds is None else seconds * 1e9)


def format_bytes(count: float | None) -> str:
    """1536 -> '1.5 KiB', 64_000_000 -> '61 MiB' (binary units)."""
    return _scaled(count, (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("B", 1.0)), "{number} {unit}")


def format_rate(per_second: float | None) -> str:
    """143_250 -> '143k/s', 2.5e6 -> '2.5M/s', 12.3 -> '12.3/s'."""
    return _scaled(per_second, (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0)), "{number}{unit}/s")


def format_value(value: float | None, unit: str) -> str:
    """A check's value in its unit: a duration, a rate, a size, or a slope."""
    if value is None:
        return "-"
    if unit == "ns":
        return format_duration(value)
    if unit == "samples/s":
        return format_rate(value)
    if unit == "bytes":
        return format_bytes(value)
    if unit.startswith("ns/"):
        return f"{format_duration(value)}/{unit[3:]}"
    if unit.endswith("/s"):  # a rate of things, as tokens/s: 1234 -> '1.23k tokens/s', never '1.23e+03 tokens/s'
        return _scaled(value, (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0)), "{number}{unit} " + unit)
    return f"{value:.3g} {unit}"
