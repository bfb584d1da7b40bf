"""Plain-text pictures shared by the CLI and the app: histograms in unicode bars, a braille scatter
canvas (2 x 4 dots per character cell, one colour per cell), and the line-by-line write-ups of a
dataset profile and of a drift result.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

BLOCKS = " ▏▎▍▌▋▊▉█"
BRAILLE_BASE = 0x2800
# dot bit for (column 0..1, row 0..3) of a braille cell
_DOT = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.int64)


def bar(value: float, vmax: float, width: int) -> str:
    if vmax <= 0 or value <= 0:
        return ""
    eighths = int(round(value / vmax * width * 8))
    return "█" * (eighths // 8) + (BLOCKS[eighths % 8] if eighths % 8 else "")


def _num(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10 or float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def histogram_lines(summary: dict[str, Any], width: int = 40, max_rows: int = 10) -> list[str]:
    """A histogram (``LengthSummary.to_dict()``) as rows of bars, merged to ``max_rows`` bins."""
    counts = list(summary.get("hist_counts") or [])
    edges = list(summary.get("hist_edges") or [])
    if not counts:
        return ["(no values)"]
    step = max(1, math.ceil(len(counts) / max_rows))
    rows = []
    for s in range(0, len(counts), step):
        c = sum(counts[s:s + step])
        lo, hi = edges[s], edges[min(s + step, len(counts))]
        last = s + step >= len(counts)
        rows.append((f"{_num(lo)}–{_num(hi)}{'+' if last else ''}", c))
    vmax = max(c for _, c in rows)
    lw = max(len(r[0]) for r in rows)
    return [f"{label.rjust(lw)} │{bar(c, vmax, width)} {c:,}" for label, c in rows]


def summary_line(summary: dict[str, Any]) -> str:
    if not summary.get("count"):
        return "none"
    return (f"mean {_num(summary['mean'])} · median {_num(summary['p50'])} · p90 {_num(summary['p90'])} · "
            f"p99 {_num(summary['p99'])} · max {_num(summary['max'])}")


class BrailleCanvas:
    """``cols`` x ``rows`` characters of braille dots; each cell remembers the colour index of the
    last point drawn in it (draw the important points last)."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = max(1, cols), max(1, rows)
        self.bits = np.zeros((self.rows, self.cols), dtype=np.int64)
        self.color = np.full((self.rows, self.cols), -1, dtype=np.int64)
        self.marks: dict[tuple[int, int], str] = {}

    def cell_of(self, x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float],
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(cell row, cell column, dot row, dot column) of points in data coordinates."""
        x0, x1, y0, y1 = bounds
        px = np.clip(((np.asarray(x) - x0) / max(x1 - x0, 1e-12) * (self.cols * 2 - 1)).round().astype(int),
                     0, self.cols * 2 - 1)
        py = np.clip(((y1 - np.asarray(y)) / max(y1 - y0, 1e-12) * (self.rows * 4 - 1)).round().astype(int),
                     0, self.rows * 4 - 1)
        return py // 4, px // 2, py % 4, px % 2

    def plot(self, x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float],
             color: int | np.ndarray = 0) -> None:
        r, c, dr, dc = self.cell_of(x, y, bounds)
        np.bitwise_or.at(self.bits, (r, c), _DOT[dr, dc])
        colors = np.broadcast_to(np.asarray(color, dtype=np.int64), r.shape)
        self.color[r, c] = colors

    def mark(self, x: float, y: float, bounds: tuple[float, float, float, float], char: str) -> tuple[int, int]:
        r, c, _, _ = self.cell_of(np.array([x]), np.array([y]), bounds)
        self.marks[(int(r[0]), int(c[0]))] = char
        return int(r[0]), int(c[0])

    def cells(self) -> list[list[tuple[str, int]]]:
        """Rows of (character, colour index or -1)."""
        out = []
        for r in range(self.rows):
            row = []
            for c in range(self.cols):
                if (r, c) in self.marks:
                    row.append((self.marks[(r, c)], -2))
                else:
                    b = int(self.bits[r, c])
                    row.append((chr(BRAILLE_BASE + b) if b else " ", int(self.color[r, c]) if b else -1))
            out.append(row)
        return out

    def text(self) -> str:
        return "\n".join("".join(ch for ch, _ in row) for row in self.cells())


def bounds_of(coords: np.ndarray, pad: float = 0.02) -> tuple[float, float, float, float]:
    x, y = coords[:, 0], coords[:, 1]
    x0, x1, y0, y1 = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    dx, dy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    return x0 - pad * dx, x1 + pad * dx, y0 - pad * dy, y1 + pad * dy


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def profile_lines(p: dict[str, Any], width: int = 36) -> list[str]:
    """The dataset profile as the text `embtui inspect` prints and the Project pane shows."""
    out = [f"{p['project']}: {p['documents']:,} documents, {p['queries']:,} queries; splits: "
           + ", ".join(f"{s} {v['queries']} q / {v['judgments']} judgments" for s, v in p["splits"].items())]
    L = p["lengths"]
    out += ["", "document length (words): " + summary_line(L["document_words"])]
    out += ["  " + line for line in histogram_lines(L["document_words"], width, 8)]
    out += ["query length (words): " + summary_line(L["query_words"])]
    out += ["  " + line for line in histogram_lines(L["query_words"], width, 6)]
    d = p["duplicates"]
    out += ["", f"exact duplicates: {d['documents']['groups']} document groups "
            f"({d['documents']['extra_copies']} extra copies), {d['queries']['groups']} query groups"]
    for g in d["documents"]["examples"][:3]:
        out.append("  same text: " + ", ".join(g[:6]) + (" …" if len(g) > 6 else ""))
    e = p["empty"]
    out.append(f"empty texts: {e['documents_count']} documents, {e['queries_count']} queries; "
               f"queries without judgments: {p['unjudged_queries']['count']}")
    for j in p["judgments"]:
        grades = ", ".join(f"grade {g}: {n}" for g, n in j["grades"].items())
        out.append(f"judgments {j['split']}: {j['judged_queries']}/{j['queries']} queries judged, "
                   f"{j['judgments']} judgments ({j['per_query']['mean']:.2f} per query; "
                   f"{j['relevant_per_query_mean']:.2f} relevant); {grades}")
    out.append("")
    for split, o in p["lexical_overlap"].items():
        out.append(f"lexical overlap {split} (share of query terms in its relevant documents, bm25 analyser): "
                   f"{summary_line(o['summary'])}; {_pct(o['zero_share'])} share no term")
    lv = p.get("lexical_vs_dense")
    if lv and lv.get("bands"):
        out.append(f"  bm25 - {lv['dense_model']} NDCG@10 by overlap ({lv['split']}, runs {lv['lexical_run']} and "
                   f"{lv['dense_run']}): Spearman {lv['spearman']:+.3f} (p {lv['p_value']:.3g})")
        for b in lv["bands"]:
            md = "–" if b["mean_delta"] is None else f"{b['mean_delta']:+.3f}"
            out.append(f"    overlap {b['from']:.2f}–{b['to']:.2f}: {b['queries']} queries, mean Δ {md}, "
                       f"bm25 better on {b['lexical_wins']}")
    for m in p["models"]:
        t = m["truncation"]
        out += ["", f"{m['model']} (max length {t['max_length'] or 'none'} tokens)"]
        out.append("  tokens per document: " + summary_line(m["tokens"]))
        out += ["    " + line for line in histogram_lines(m["tokens"], width, 8)]
        if t["max_length"]:
            out.append(f"  truncated: {t['truncated']:,} documents ({_pct(t['rate'])}); relevant ones: "
                       f"{t['relevant_truncated']:,}/{t['relevant']:,} ({_pct(t['relevant_rate'])}); "
                       f"{_pct(t['tokens_lost_share'])} of all document tokens never seen")
        out.append(f"  [UNK] rate {m['unk_rate']:.4%} · {m['pieces_per_word']:.2f} pieces per word")
        if m["most_split"]:
            out.append("  most-split frequent words: " + "; ".join(
                f"{w['word']} ({w['pieces']}: {' '.join(w['split'])})" for w in m["most_split"][:6]))
        nd = m.get("near_duplicates") or {}
        if nd.get("computed"):
            out.append(f"  near-duplicates (cosine ≥ {nd['threshold']}): {nd['pairs']:,} pairs"
                       + ("; e.g. " + ", ".join(f"{x['a']}~{x['b']} {x['cosine']:.3f}" for x in nd["examples"][:3])
                          if nd["examples"] else ""))
        elif nd:
            out.append(f"  near-duplicates: not computed ({nd['why']})")
    return out


def drift_lines(r: dict[str, Any]) -> list[str]:
    """A drift result (``api.data.drift``) as the lines `embtui drift` prints and the Drift pane shows."""
    m = r["meanings"]
    verdict = "DRIFTED" if r["drifted"] else "no drift beyond the thresholds"
    out = [f"{r['current']} ({r['n_current']:,}) against {r['reference']} ({r['n_reference']:,}) through "
           f"{r['model']}: {verdict}", ""]
    mmd = r["mmd"]
    auc = "–" if r["auc"] is None else f"{r['auc']:.3f}"
    out.append(f"centroid shift   {r['centroid_shift']:.4f}   {m['centroid_shift']}")
    out.append(f"MMD²             {mmd['mmd2']:.4f}   p {mmd['p_value']:.4f} ({mmd['permutations']} permutations): "
               f"{m['mmd']}")
    out.append(f"classifier AUC   {auc}    {m['auc']}")
    out.append(f"PSI              {r['psi']:.3f}    {m['psi']}")
    cov = r.get("coverage")
    if cov:
        out.append(f"coverage         {cov['uncovered_share']:.1%} uncovered (reference 5%), nearest-document "
                   f"cosine {cov['current_mean']:.3f} vs {cov['reference_mean']:.3f}, KS p {cov['ks_p']:.3g}")
        for t in cov.get("uncovered", [])[:3]:
            out.append(f"    far from every document: {t}")
    elif r.get("coverage_note"):
        out.append(f"coverage         not computed: {r['coverage_note']}")
    out += ["", "clusters (k-means on the reference) that moved most:"]
    for c in r["clusters"][:5]:
        arrow = "grew" if c["current_share"] > c["reference_share"] else "shrank"
        name = "outside every reference cluster" if c["cluster"] == r.get("k", -1) else f"cluster {c['cluster']}"
        out.append(f"  {name}: {c['reference_share']:.1%} → {c['current_share']:.1%} ({arrow}; "
                   f"PSI term {c['psi_term']:.3f})")
        for t in c["examples"][:2]:
            out.append(f"      {t}")
    if r.get("windows"):
        q = r.get("quality")
        out += ["", "per window:  window  n  centroid  MMD p  AUC  PSI" + (
            f"  {q['metric']} (run {q['run']})" if q else "")]
        for w in r["windows"]:
            if isinstance(w["mmd_p"], (int, float)) and not math.isnan(w["mmd_p"]):
                auc_w = "–" if w["auc"] is None else f"{w['auc']:.3f}"
                flag = "  ← drift" if w["drifted"] else ""
                qual = ""
                if q:
                    v = w.get(q["metric"])
                    qual = "  –" if v is None else f"  {v:.4f}"
                out.append(f"  {w['window']}  {w['n']:>5}  {w['centroid_shift']:.4f}  {w['mmd_p']:.4f}  {auc_w}  "
                           f"{w['psi']:.3f}{qual}{flag}")
            else:
                out.append(f"  {w['window']}  {w['n']:>5}  (too few queries)")
    return out


def scatter_text(coords: np.ndarray, cols: int = 70, rows: int = 20, colors: Sequence[int] | None = None) -> str:
    canvas = BrailleCanvas(cols, rows)
    canvas.plot(coords[:, 0], coords[:, 1], bounds_of(coords), 0 if colors is None else np.asarray(colors))
    return canvas.text()
