"""A braille scatter plot with a keyboard cursor: points coloured by a palette index, a few points
emphasised (drawn last, in their own colour), the point under the cursor marked; the arrows move
the cursor to the nearest point in that direction."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from embtui.api.textplot import BrailleCanvas, bounds_of

PALETTE = ("#5fafff", "#ffaf5f", "#87d787", "#ff87af", "#af87ff", "#d7d75f", "#5fd7d7", "#d78787",
           "#87afaf", "#afaf87", "#ff5f5f", "#8787ff")
EMPH = {"relevant": "#00ff5f", "retrieved": "#ffd700", "query": "#ff5fff"}


class Scatter(Widget, can_focus=True):
    """Points in 2D drawn in braille; ``cursor`` is the index of the point under the cursor."""

    DEFAULT_CSS = "Scatter { height: 1fr; min-height: 8; } Scatter:focus { background: $boost; }"
    BINDINGS = [Binding("left", "move(-1,0)", "←", show=False), Binding("right", "move(1,0)", "→", show=False),
                Binding("up", "move(0,1)", "↑", show=False), Binding("down", "move(0,-1)", "↓", show=False),
                Binding("enter", "open", "Open", show=False)]

    class Moved(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    class Opened(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.coords = np.zeros((0, 2), np.float32)
        self.point_colors = np.zeros(0, np.int64)
        self.emphasis: dict[str, np.ndarray] = {}
        self.cursor: int | None = None

    def set_points(self, coords: np.ndarray, colors: Sequence[int], cursor: int | None = None) -> None:
        self.coords = np.asarray(coords, np.float32)
        self.point_colors = np.asarray(colors, np.int64)
        self.emphasis = {}
        self.cursor = cursor if cursor is not None or not len(self.coords) else 0
        self.refresh()

    def recolour(self, colors: Sequence[int]) -> None:
        self.point_colors = np.asarray(colors, np.int64)
        self.refresh()

    def emphasise(self, groups: dict[str, Sequence[int]]) -> None:
        self.emphasis = {k: np.asarray(v, np.int64) for k, v in groups.items() if len(v)}
        self.refresh()

    def render(self) -> Text:
        cols, rows = max(self.size.width, 1), max(self.size.height, 1)
        if not len(self.coords):
            return Text("no points yet", style="dim")
        canvas = BrailleCanvas(cols, rows)
        bounds = bounds_of(self.coords)
        base = np.where(self.point_colors < 0, 99, self.point_colors % len(PALETTE))  # -1: no colour (grey)
        canvas.plot(self.coords[:, 0], self.coords[:, 1], bounds, base)
        names = list(EMPH)
        for i, name in enumerate(names):  # relevance on top of the clusters, the query last
            idx = self.emphasis.get(name)
            if idx is not None and len(idx):
                canvas.plot(self.coords[idx, 0], self.coords[idx, 1], bounds, 100 + i)
        if self.cursor is not None:
            x, y = self.coords[self.cursor]
            canvas.mark(float(x), float(y), bounds, "◆")
        text = Text()
        for r, row in enumerate(canvas.cells()):
            for ch, color in row:
                if color == -2:
                    text.append(ch, style="bold reverse")
                elif color == 99:
                    text.append(ch, style="grey42")
                elif color >= 100:
                    text.append(ch, style=EMPH[names[color - 100]])
                elif color >= 0:
                    text.append(ch, style=PALETTE[color % len(PALETTE)])
                else:
                    text.append(ch)
            if r < rows - 1:
                text.append("\n")
        return text

    def nearest_in(self, dx: int, dy: int) -> int | None:
        """The nearest point from the cursor in a direction (screen-scaled), else None."""
        if self.cursor is None or len(self.coords) < 2:
            return None
        x0, x1, y0, y1 = bounds_of(self.coords)
        # in character-cell units, so 'right' means right on screen
        sx = max(self.size.width, 1) / max(x1 - x0, 1e-12)
        sy = max(self.size.height, 1) / max(y1 - y0, 1e-12)
        d = (self.coords - self.coords[self.cursor]) * np.array([sx, sy * 2.0])
        along = d[:, 0] * dx + d[:, 1] * dy
        across = np.abs(d[:, 0] * dy - d[:, 1] * dx)
        ok = along > 1e-9
        if not ok.any():
            return None
        score = np.where(ok, along + 2.0 * across, np.inf)
        return int(np.argmin(score))

    def action_move(self, dx: int, dy: int) -> None:
        nxt = self.nearest_in(dx, dy)
        if nxt is not None:
            self.cursor = nxt
            self.refresh()
            self.post_message(self.Moved(nxt))

    def action_open(self) -> None:
        if self.cursor is not None:
            self.post_message(self.Opened(self.cursor))
