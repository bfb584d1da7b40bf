"""The run card under the Metrics table: how the run under the cursor was made (config, sizes, times)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

SPEC_FIELDS = (("precision", "precision"), ("batch_size", "batch"), ("max_seq_length", "max length"),
               ("truncate_dim", "truncate dim"), ("query_prompt", "query prompt"),
               ("doc_prompt", "doc prompt"), ("normalize", "normalize"))
TIMINGS = (("encode_documents_s", "encode docs"), ("encode_queries_s", "encode queries"),
           ("index_build_s", "index"), ("search_s", "search"), ("metrics_s", "score"),
           ("total_s", "total"))


def _seconds(value: Any) -> str:
    v = float(value)
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s"


class RunCard(Static):
    """Two columns of label/value pairs: the model and index config, the data, the timings."""

    DEFAULT_CSS = """
    RunCard { height: auto; padding: 0 1; margin-top: 1; border-top: hkey $panel-lighten-2; }
    """

    def show(self, run: Any | None) -> None:
        self.update(self.render_run(run) if run is not None else "")
        self.display = run is not None

    @staticmethod
    def render_run(run: Any) -> Group:
        spec, info, index, timings = (run.model_spec or {}, run.info or {}, run.index_config or {},
                                      run.timings or {})
        rows: list[tuple[str, str]] = [("model", str(spec.get("model") or run.model_name))]
        if run.model_fingerprint:
            rows.append(("weights", str(run.model_fingerprint)[:28]))
        if spec.get("model") != "bm25":
            rows += [(label, str(spec[key])) for key, label in SPEC_FIELDS
                     if spec.get(key) not in (None, "", False) or key == "normalize"]
        kind = index.get("kind", "")
        rows.append(("index", f"{kind} {index.get('metric', '')}".strip()
                     + (f", depth {index['depth']}" if index.get("depth") else "")))
        rows.append(("device", str(run.device or "")))
        data = [("data", f"{run.project}/{run.split}: {info.get('documents', '?')} docs, "
                         f"{info.get('queries', '?')} queries")]
        if "scored" in info:
            data.append(("scored", f"{info['scored']} queries, {info.get('skipped', 0)} skipped"))
        enc = (info.get("encode") or {}).get("documents")
        if enc:
            data.append(("cache", f"{enc.get('cached', 0)} of {enc.get('texts', 0)} docs cached, "
                                  f"{enc.get('encoded', 0)} encoded"))
        data += [(label, _seconds(timings[key])) for key, label in TIMINGS if key in timings]
        grid = Table.grid(padding=(0, 1), expand=True)
        for _ in range(2):
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column(ratio=1, overflow="ellipsis", no_wrap=True)
        title = Text.assemble((f"run #{run.id} {run.model_name}", "bold"), "  ",
                              (run.status, "dim"))
        for i in range(max(len(rows), len(data))):
            left = rows[i] if i < len(rows) else ("", "")
            right = data[i] if i < len(data) else ("", "")
            grid.add_row(left[0], left[1], right[0], right[1])
        return Group(title, grid)
