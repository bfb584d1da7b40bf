"""The Space pane (8): a model's documents and the split's queries projected to 2D in braille,
coloured by k-means cluster or by relevance to the query under the cursor (its relevant documents,
what the model's latest run retrieved for it, the query itself); the arrows walk the points, enter
opens one; the space statistics below. Everything is computed in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Static

from embtui.tui.actions import bindings
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.scatter import EMPH, PALETTE, Scatter

K_STEPS = (4, 8, 16)


@dataclass(frozen=True)
class SpaceData:
    view: Any
    texts: dict[str, tuple[str, str]]  # point id -> (title, text); queries as ("", text)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    retrieved: dict[str, list[str]] = field(default_factory=dict)  # query -> top-10 doc ids
    run_id: int | None = None
    labels: dict[str, str] = field(default_factory=dict)  # point id -> annotation label


class SpacePane(Pane):
    PANE_ID = "space"
    BINDINGS = bindings("space")

    DEFAULT_CSS = """
    SpacePane { padding: 0 1; }
    SpacePane #space-head, SpacePane #space-point, SpacePane #space-stats { height: auto; }
    SpacePane #space-point { min-height: 2; }
    """

    class Loaded(Message, bubble=False):
        def __init__(self, data: SpaceData | None, error: str = "") -> None:
            super().__init__()
            self.data = data
            self.error = error

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.method = "pca"
        self.k = 8
        self.color_by = "cluster"  # "label" (annotations) or "relevance" (to the query under the cursor)
        self.space: SpaceData | None = None
        self.focus_query: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="space-head")
        yield Scatter(id="space-plot")
        yield Static("", id="space-point")
        yield Static("", id="space-stats")

    def model(self) -> str | None:
        """The first selected model with an embedding space."""
        return next(iter(self.dense_models()), None)

    def reload(self) -> None:
        model, project = self.model(), self.context.project
        head = self.query_one("#space-head", Static)
        if not project or not model:
            head.update(Text("Select a dense model in the workspace tree (space) to see its embedding space.",
                             style="dim"))
            return
        head.update(Text(f"{model} · {project} · {self.method.upper()} · k={self.k} · computing…", style="dim"))
        self.load(project, model, self.context.split, self.method, self.k)

    @work(thread=True, exclusive=True, group="space", exit_on_error=False, description="embedding space")
    def load(self, project: str, model: str, split: str, method: str, k: int) -> None:
        from embtui.api.data import build_space, point_labels
        from embtui.errors import EmbtuiError

        store = self.store
        try:
            labels = point_labels(store, project)
            try:  # labelled documents: score the clusters against the labels too
                view = build_space(store, project, model, method=method, k=k, split=split,
                                   labels="annotation" if labels else None, encode=False)
            except EmbtuiError as exc:
                if "cache" in str(exc):
                    raise
                view = build_space(store, project, model, method=method, k=k, split=split, encode=False)
            docs = store.documents(project, [i for i, kind in zip(view.ids, view.kinds) if kind == "doc"])
            queries = store.queries(project, split)
            texts = dict(docs)
            texts.update({q: ("", t) for q, t in queries.items()})
            qrels = store.qrels(project, split)
            runs = [r for r in store.list_runs(project, split, status="done") if r.model_name == model]
            retrieved: dict[str, list[str]] = {}
            run_id = None
            if runs:
                run_id = runs[-1].id
                retrieved = {q: [d for d, _ in hits[:10]] for q, hits in store.run_rankings(run_id).items()}
            self.post_message(self.Loaded(SpaceData(view, texts, qrels, retrieved, run_id, labels)))
        except EmbtuiError as exc:
            self.post_message(self.Loaded(None, str(exc)))

    @on(Loaded)
    def show(self, message: Loaded) -> None:
        head = self.query_one("#space-head", Static)
        if message.data is None:
            head.update(Text(message.error, style="red"))
            return
        self.space = message.data
        v = message.data.view
        plot = self.query_one(Scatter)
        plot.set_points(v.coords, v.clusters.tolist())
        expl = f" · axes keep {sum(v.explained):.1%} of the variance" if v.explained else ""
        sample = f" (sample of {v.sampled_from:,})" if v.sampled_from > v.kinds.count("doc") else ""
        head.update(Text.assemble((f"{v.model}", "bold"), f" · {v.method.upper()} · k={self.k} · "
                                  f"{v.kinds.count('doc'):,} documents{sample}, {v.kinds.count('query'):,} queries{expl}",
                                  ("   m method · c colour · k clusters · ←↑↓→ move · enter open", "dim")))
        s = v.stats
        lines = [f"anisotropy {s.anisotropy:.4f} · effective dimensionality {s.participation_ratio:.1f} "
                 f"(entropy rank {s.entropy_rank:.1f}) of {s.dim}"]
        c = s.clustering
        if c is not None:
            line = f"k-means k={c.k}: silhouette {c.silhouette:.4f}" if c.silhouette is not None else f"k={c.k}"
            for name in ("purity", "nmi", "ari", "v_measure"):
                val = getattr(c, name)
                if val is not None:
                    line += f" · {name} {val:.4f}"
            lines.append(line)
        stats = Text("\n".join(lines))
        for w in v.warnings:
            stats.append(f"\nwarning: {w}", style="yellow")
        self.query_one("#space-stats", Static).update(stats)
        self.apply_colour()
        self.describe(plot.cursor)

    # -- colour, cursor --------------------------------------------------------------------------
    def apply_colour(self) -> None:
        plot = self.query_one(Scatter)
        sd = self.space
        if sd is None:
            return
        if self.color_by == "label":
            names = sorted(set(sd.labels.values()))
            at = {n: i for i, n in enumerate(names)}
            plot.recolour([at.get(sd.labels.get(pid, ""), -1) if pid in sd.labels else -1 for pid in sd.view.ids])
            plot.emphasise({})
            return
        plot.recolour(sd.view.clusters.tolist())
        if self.color_by == "cluster" or self.focus_query is None:
            plot.emphasise({})
            return
        pos = {pid: i for i, pid in enumerate(sd.view.ids)}
        q = self.focus_query
        rel = [pos[d] for d, g in sd.qrels.get(q, {}).items() if g > 0 and d in pos]
        ret = [pos[d] for d in sd.retrieved.get(q, []) if d in pos and pos[d] not in rel]
        plot.emphasise({"retrieved": ret, "relevant": rel, "query": [pos[q]] if q in pos else []})

    def describe(self, index: int | None) -> None:
        sd = self.space
        box = self.query_one("#space-point", Static)
        if sd is None or index is None:
            box.update("")
            return
        v = sd.view
        pid, kind, cluster = v.ids[index], v.kinds[index], int(v.clusters[index])
        title, text = sd.texts.get(pid, ("", ""))
        line = Text.assemble((f"{'query' if kind == 'query' else 'document'} {pid}", "bold"),
                             (f"  cluster {cluster}", PALETTE[cluster % len(PALETTE)]))
        if kind == "query":
            rel = [d for d, g in sd.qrels.get(pid, {}).items() if g > 0]
            got = sd.retrieved.get(pid, [])
            line.append(f"  relevant {len(rel)}, of them in run {sd.run_id}'s top 10: "
                        f"{sum(d in got for d in rel)}" if sd.run_id else f"  relevant {len(rel)}")
        snippet = (title + " — " if title else "") + text
        line.append("\n" + snippet[:220].replace("\n", " "))
        if self.color_by == "label":
            names = sorted(set(sd.labels.values()))
            line.append("\n")
            if not names:
                line.append("no annotation labels yet (tag documents or queries in the Failures pane: a)", style="dim")
            for i, name in enumerate(names[:10]):
                line.append("⣿ " + name + "  ", style=PALETTE[i % len(PALETTE)])
            if pid in sd.labels:
                line.append(f"  this point: {sd.labels[pid]}", style="bold")
        if self.color_by == "relevance":
            line.append("\n")
            for name, label in (("query", "◆ the query"), ("relevant", " its relevant documents"),
                                ("retrieved", " retrieved (top 10)")):
                line.append("⣿" + label + "  ", style=EMPH[name])
        box.update(line)

    @on(Scatter.Moved)
    def moved(self, message: Scatter.Moved) -> None:
        sd = self.space
        if sd is not None and sd.view.kinds[message.index] == "query":
            self.focus_query = sd.view.ids[message.index]
            self.apply_colour()
        self.describe(message.index)

    @on(Scatter.Opened)
    def opened(self, message: Scatter.Opened) -> None:
        from embtui.tui.screens.document import DocumentScreen

        sd = self.space
        if sd is None:
            return
        pid, kind = sd.view.ids[message.index], sd.view.kinds[message.index]
        title, text = sd.texts.get(pid, ("", ""))
        meta = f"{kind} · cluster {int(sd.view.clusters[message.index])}"
        self.app.push_screen(DocumentScreen(pid, title if kind == "doc" else "(query)", text, meta))

    # -- actions ---------------------------------------------------------------------------------
    def action_next_method(self) -> None:
        self.method = "umap" if self.method == "pca" else "pca"
        self.reload()

    def action_next_colour(self) -> None:
        self.color_by = {"cluster": "label", "label": "relevance", "relevance": "cluster"}[self.color_by]
        if self.color_by == "relevance" and self.focus_query is None and self.space is not None:
            qs = [i for i, k in enumerate(self.space.view.kinds) if k == "query"]
            if qs:  # start on the first query so there is something to show
                plot = self.query_one(Scatter)
                plot.cursor = qs[0]
                plot.refresh()
                self.focus_query = self.space.view.ids[qs[0]]
                self.describe(qs[0])
        self.apply_colour()
        if self.space is not None:
            self.describe(self.query_one(Scatter).cursor)

    def action_next_k(self) -> None:
        self.k = K_STEPS[(K_STEPS.index(self.k) + 1) % len(K_STEPS)] if self.k in K_STEPS else 8
        self.reload()

    def focus_default(self) -> None:
        focus_now(self.query_one(Scatter))
