"""The quality–cost frontier: which runs no other run beats on both quality and a cost (latency,
memory), which is best under constraints, and a terminal scatter of quality against a cost. Pure:
points in, results out.

A point is Pareto-optimal when no other point has quality at least as high and cost at least as
low with one of them strictly better. Points without a cost (no profile yet) are left out of that
axis's frontier and of any constraint on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Point:
    run_id: int
    label: str
    quality: float
    p99_ms: float | None = None
    bytes_per_doc: float | None = None


def pareto(points: Sequence[Point], cost: str) -> set[int]:
    """Run ids on the frontier of quality (higher is better) against ``cost`` (``p99_ms`` or
    ``bytes_per_doc``, lower is better)."""
    have = [p for p in points if getattr(p, cost) is not None and not math.isnan(p.quality)]
    out = set()
    for p in have:
        pc = getattr(p, cost)
        dominated = any((q.quality >= p.quality and getattr(q, cost) <= pc)
                        and (q.quality > p.quality or getattr(q, cost) < pc) for q in have)
        if not dominated:
            out.add(p.run_id)
    return out


def under_constraints(points: Sequence[Point], *, max_p99_ms: float | None = None,
                      max_bytes_per_doc: float | None = None) -> list[Point]:
    """The points meeting every constraint given, best quality first (ties: lower p99, then
    fewer bytes, then the older run). A point missing a constrained cost is left out."""
    ok = []
    for p in points:
        if max_p99_ms is not None and (p.p99_ms is None or p.p99_ms > max_p99_ms):
            continue
        if max_bytes_per_doc is not None and (p.bytes_per_doc is None or p.bytes_per_doc > max_bytes_per_doc):
            continue
        ok.append(p)
    inf = float("inf")
    return sorted(ok, key=lambda p: (-p.quality, p.p99_ms if p.p99_ms is not None else inf,
                                     p.bytes_per_doc if p.bytes_per_doc is not None else inf, p.run_id))


def scatter(points: Sequence[Point], cost: str, frontier: set[int], *, width: int = 60, height: int = 14,
            log_x: bool = True) -> list[str]:
    """Rows of a text scatter: quality up, ``cost`` to the right (log scale by default), ``●`` on
    the frontier, ``·`` off it, each point's number (its index in ``points`` + 1) beside its mark
    (``4+`` where several share a cell; a label that would overwrite another mark is left out)."""
    have = [(i, p) for i, p in enumerate(points) if getattr(p, cost) is not None and getattr(p, cost) > 0]
    if not have:
        return ["(no point has this cost yet)"]

    def x_of(v: float) -> float:
        return math.log10(v) if log_x else v

    xs = [x_of(getattr(p, cost)) for _, p in have]
    ys = [p.quality for _, p in have]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1e-3
    grid = [[" "] * width for _ in range(height)]
    cells: dict[tuple[int, int], list[tuple[int, Point]]] = {}
    for (i, p), x, y in zip(have, xs, ys):
        col = min(width - 4, int((x - x0) / (x1 - x0) * (width - 4)))
        row = height - 1 - min(height - 1, int((y - y0) / (y1 - y0) * (height - 1)))
        cells.setdefault((row, col), []).append((i, p))
    for (row, col), here in sorted(cells.items()):
        grid[row][col] = "●" if any(p.run_id in frontier for _, p in here) else "·"
        label = str(here[0][0] + 1) + ("+" if len(here) > 1 else "")  # "4+": 4 and others share the cell
        if all(col + 1 + j < width and grid[row][col + 1 + j] == " " for j in range(len(label))):
            for j, ch in enumerate(label):
                grid[row][col + 1 + j] = ch
    out = []
    for r in range(height):
        label = ""
        if r == 0:
            label = f"{y1:.3f}"
        elif r == height - 1:
            label = f"{y0:.3f}"
        out.append(f"{label:>7} │" + "".join(grid[r]))
    lo, hi = (10 ** x0, 10 ** x1) if log_x else (x0, x1)
    axis = f"{'':>7} └" + "─" * width
    out.append(axis)
    out.append(f"{'':>9}{_fmt(lo):<{width // 2}}{_fmt(hi):>{width // 2}}")
    return out


def _fmt(v: float) -> str:
    return f"{v:.3g}"
