"""Plain-text progress bars, ETAs and rates: readable without colour and in any table cell."""

from __future__ import annotations


def bar(fraction: float | None, width: int = 10) -> str:
    """``█████░░░░░  52%``; an unknown fraction shows as dots."""
    if fraction is None:
        return "·" * width + "    "
    f = min(max(float(fraction), 0.0), 1.0)
    full = int(round(f * width))
    return "█" * full + "░" * (width - full) + f" {f * 100:3.0f}%"


def eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def rate(items_per_s: float | None) -> str:
    if not items_per_s:
        return ""
    return f"{items_per_s:,.0f}/s" if items_per_s >= 10 else f"{items_per_s:.1f}/s"


def size(nbytes: float | None) -> str:
    if nbytes is None:
        return ""
    n = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover
