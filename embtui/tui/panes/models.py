"""The Models & Devices pane: saved model specs (add, select, edit) and live device memory/use."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from embtui.tui.actions import bindings
from embtui.tui.messages import ModelToggled, WorkspaceChanged
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.path_suggester import complete_path

DEVICE_REFRESH_S = 2.0
PRECISIONS = ("fp32", "fp16", "bf16", "onnx", "onnx-int8")
# spec field -> (label, input id, parse) for the free-text fields of the edit form
TEXT_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("batch_size", "batch size", "int"),
    ("max_seq_length", "max length", "int?"),
    ("truncate_dim", "truncate dim", "int?"),
    ("query_prompt", "query prompt", "str?"),
    ("document_prompt", "doc prompt", "str?"),
)


class ModelSuggester(Suggester):
    """Completes 'bm25', the bundled MiniLM id, and file system paths."""

    KNOWN = ("bm25", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        for name in self.KNOWN:
            if name.startswith(value) and name != value:
                return name
        if value.startswith((".", "/", "~")):
            return complete_path(value)
        return None


def short_source(model: str) -> str:
    """A model source as the table shows it: hub ids whole, long paths by their last two parts."""
    parts = Path(model).parts
    if model.startswith(("/", "~", ".")) and len(parts) > 3:
        return "…/" + "/".join(parts[-2:])
    return model


def _source(spec: dict[str, Any], name: str) -> str:
    """The model column: a pipeline's stages in one line, else the model's source."""
    if spec.get("pipeline") is not None:
        from embtui.api.pipelines import Pipeline

        return "pipeline: " + Pipeline.from_dict(spec["pipeline"]).describe()
    return short_source(str(spec.get("model", name)))


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f}"


def _parse(kind: str, label: str, raw: str) -> Any:
    from embtui.errors import EmbtuiError

    if kind.endswith("?") and raw.strip() == "":
        return None
    if kind.startswith("str"):
        return raw  # prompts keep their spaces ("query: ")
    raw = raw.strip()
    if kind.startswith("int"):
        try:
            return int(raw)
        except ValueError:
            raise EmbtuiError(f"{label} must be a whole number, not '{raw}'") from None
    return raw


def lineage_text(lin: dict[str, Any] | None) -> Text | str:
    """One or two lines of a trained model's lineage (empty for other models)."""
    if not lin:
        return ""
    base = lin.get("base", {})
    cfg = lin.get("config", {})
    if lin.get("kind") in ("bi-encoder", "cross-encoder"):
        data = lin.get("data", {})
        neg = (data.get("negatives") or {}).get("source")
        metric = cfg.get("metric", "ndcg@10")
        best, based = (lin.get("best_dev") or {}).get(metric), (lin.get("base_dev") or {}).get(metric)
        line = (f"lineage: fine-tuned from {base.get('name')} ({str(base.get('fingerprint'))[:15]}) on "
                f"{data.get('project')}/{data.get('train_split')}, {data.get('pairs')} pairs"
                + (f" + {neg} negatives" if neg else "")
                + f"; {cfg.get('loss')} lr {cfg.get('lr')} x{cfg.get('epochs')} epochs batch "
                f"{cfg.get('batch_size')} seed {cfg.get('seed')}; best step {lin.get('best_step')}"
                + (f": dev {metric} {best:.4f}" if best is not None else "")
                + (f" (base {based:.4f})" if based is not None else ""))
    else:
        line = (f"lineage: {lin.get('kind')} of {base.get('name')}, {lin.get('dim')} dims, "
                f"{(lin.get('size_bytes') or 0) / 2**20:.1f} MiB")
    warns = lin.get("warnings") or []
    text = Text(line, style="dim")
    if warns:
        text.append("\n" + "; ".join(w.split(":")[0] for w in warns) + " warning(s) during training",
                    style="yellow")
    return text


class ModelsPane(Pane):
    """Model specs: add by id/path/bm25, select with space, edit and save with ctrl+s; devices
    (CPU, CUDA, MPS) with memory and utilisation, refreshed every two seconds while shown."""

    PANE_ID = "models"
    BINDINGS = bindings("models")

    class DevicesListed(Message, bubble=False):
        def __init__(self, devices: tuple[Any, ...], error: str | None = None) -> None:
            super().__init__()
            self.devices = devices
            self.error = error

    class SpecSaved(Message, bubble=False):
        def __init__(self, name: str, error: str | None, added: bool = False, pipeline: Any = None) -> None:
            super().__init__()
            self.name = name
            self.error = error
            self.added = added
            self.pipeline = pipeline  # the pipeline form that failed (reopened with the error)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.editing: str | None = None
        self.devices: tuple[Any, ...] = ()

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Models  (space: select for Query/Jobs)", classes="section-title")
            yield DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="model-lineage")
            with Horizontal(classes="form-row"):
                yield Input(placeholder="add: hub id, local path or bm25", id="add-model",
                            suggester=ModelSuggester())
                yield Input(placeholder="name (optional)", id="add-name")
                yield Button("Add", id="add-button")
            yield Label("Edit spec", id="edit-title", classes="section-title")
            with Horizontal(classes="form-row"):
                yield Label("device", classes="form-label")
                yield Select([("auto", "auto"), ("cpu", "cpu")], value="auto", allow_blank=False,
                             id="edit-device")
                yield Label("precision", classes="form-label")
                yield Select([(p, p) for p in PRECISIONS], value="fp32", allow_blank=False,
                             id="edit-precision")
            for i in range(0, len(TEXT_FIELDS), 2):
                with Horizontal(classes="form-row"):
                    for field, label, _kind in TEXT_FIELDS[i:i + 2]:
                        yield Label(label, classes="form-label")
                        yield Input(id=f"edit-{field}", classes="spec-input")
            with Horizontal(classes="form-row"):
                yield Button("Save (ctrl+s)", id="save-button", variant="primary")
                yield Static(id="spec-error", classes="error-area")
            yield Label("Devices", classes="section-title")
            yield DataTable(id="device-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        models = self.query_one("#model-table", DataTable)
        models.add_column("sel", key="sel")
        for col in ("name", "model", "device", "precision", "batch", "max len", "dim"):
            models.add_column(col, key=col)
        devices = self.query_one("#device-table", DataTable)
        for col in ("device", "name", "memory used / total GiB", "util %"):
            devices.add_column(col, key=col)
        self.set_interval(DEVICE_REFRESH_S, self._tick_devices)

    def _tick_devices(self) -> None:
        if self.shown:
            self.list_devices()

    def reload(self) -> None:
        self.show_models()
        if not self.devices:
            self.list_devices()

    def focus_default(self) -> None:
        focus_now(self.query_one("#model-table", DataTable))

    # -- models ----------------------------------------------------------------------------------
    def show_models(self) -> None:
        data = self.data
        table = self.query_one("#model-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        if data is None:
            return
        for name in data.model_names(self.context.project):
            spec = data.spec_dict(name) or {"model": name}
            dim = next((r.info.get("embedding_dim") for r in reversed(data.runs)
                        if r.model_name == name and r.info.get("embedding_dim")), None)
            lexical = str(spec.get("model", name)).lower() in ("bm25", "pipeline")  # no precision/batch/device
            runtime = ([Text("–", style="dim")] * 4 if lexical else
                       [spec.get("device", "auto"), spec.get("precision", "fp32"),
                        str(spec.get("batch_size", "")), str(spec.get("max_seq_length") or "")])
            table.add_row(Text("[x]" if name in self.context.models else "[ ]"), Text(name),
                          Text(_source(spec, name), overflow="ellipsis"),
                          *runtime, str(dim or spec.get("truncate_dim") or ""), key=name)
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
            self.edit(self._cursor_model())

    def _cursor_model(self) -> str | None:
        table = self.query_one("#model-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key
        return str(key.value)

    @on(DataTable.RowHighlighted, "#model-table")
    def model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.edit(str(event.row_key.value))

    @on(DataTable.RowSelected, "#model-table")
    def model_selected(self, event: DataTable.RowSelected) -> None:
        self.post_message(ModelToggled(str(event.row_key.value)))

    def action_toggle_model(self) -> None:
        name = self._cursor_model()
        if name is not None:
            self.post_message(ModelToggled(name))

    def edit(self, name: str | None) -> None:
        """Fill the edit form with the spec of ``name``."""
        if name is None or self.data is None or name == self.editing:
            return
        self.editing = name
        self.query_one("#model-lineage", Static).update(lineage_text(self.data.lineage.get(name)))
        spec = self.data.spec_dict(name) or {"model": name}
        source = str(spec.get("model", name))
        self.query_one("#edit-title", Label).update(
            Text(f"Edit spec: {name}" + (f"  ({short_source(source)})" if source != name else "")))
        self._device_options(spec.get("device", "auto"))
        self.query_one("#edit-precision", Select).value = spec.get("precision", "fp32")
        for field, _label, _kind in TEXT_FIELDS:
            value = spec.get(field)
            self.query_one(f"#edit-{field}", Input).value = "" if value is None else str(value)
        lexical = source.lower() == "bm25"  # a lexical model has no device, precision, batch, prompts
        for wid in ("#edit-device", "#edit-precision", *(f"#edit-{f}" for f, _l, _k in TEXT_FIELDS)):
            self.query_one(wid).disabled = lexical
        if lexical:
            self.query_one("#edit-title", Label).update(
                Text(f"Edit spec: {name}  (bm25: lexical, nothing to tune here)"))
        self.show_spec_error("")

    def _device_options(self, current: str | None = None) -> None:
        select = self.query_one("#edit-device", Select)
        current = current or str(select.value)
        ids = ["auto", "cpu"] + [d.id for d in self.devices if d.id != "cpu"]
        if current not in ids:
            ids.append(current)
        select.set_options([(i, i) for i in ids])
        select.value = current

    def edited_spec(self) -> dict[str, Any]:
        """The spec under edit with the form's values, validated (raises EmbtuiError)."""
        from embtui.api.models import ModelSpec

        assert self.data is not None and self.editing is not None
        spec = dict(self.data.spec_dict(self.editing) or {"model": self.editing})
        spec["name"] = self.editing
        spec["device"] = str(self.query_one("#edit-device", Select).value)
        spec["precision"] = str(self.query_one("#edit-precision", Select).value)
        for field, label, kind in TEXT_FIELDS:
            spec[field] = _parse(kind, label, self.query_one(f"#edit-{field}", Input).value)
        return ModelSpec.from_dict(spec).to_dict()

    @on(Button.Pressed, "#save-button")
    def action_save_spec(self) -> None:
        from embtui.errors import EmbtuiError

        if self.editing is None:
            self.show_spec_error("add a model first")
            return
        try:
            spec = self.edited_spec()
        except EmbtuiError as exc:
            self.show_spec_error(str(exc))
            return
        self.show_spec_error("")
        self.save_spec(self.editing, spec)

    def show_spec_error(self, message: str) -> None:
        area = self.query_one("#spec-error", Static)
        area.update(Text(message))
        area.set_class(bool(message), "-shown")

    def action_new_pipeline(self) -> None:
        from embtui.tui.screens.pipeline import PipelineScreen

        self.app.push_screen(PipelineScreen(), self._pipeline_entered)

    def _pipeline_entered(self, form: Any) -> None:
        if form is not None:
            self.save_pipeline(form)

    @work(thread=True, exclusive=True, group="save-spec", exit_on_error=False, description="save a pipeline")
    def save_pipeline(self, form: Any) -> None:
        """Validate and save through the use-case layer; an error reopens the form with it."""
        from embtui.api.pipelines import make_pipeline
        from embtui.errors import EmbtuiError

        assert self.store is not None
        try:
            make_pipeline(self.store, form.name, form.retrieve, fuse=form.fuse, depth=form.depth,
                          rerank=form.rerank, rerank_depth=[form.rerank_depth] * len(form.rerank)
                          if form.rerank_depth else ())
        except EmbtuiError as exc:
            self.post_message(self.SpecSaved(form.name, str(exc), added=True, pipeline=form))
            return
        self.post_message(self.SpecSaved(form.name, None, added=True))

    def action_add_model(self) -> None:
        focus_now(self.query_one("#add-model", Input))

    @on(Input.Submitted, "#add-model")
    @on(Input.Submitted, "#add-name")
    @on(Button.Pressed, "#add-button")
    def add_entered(self) -> None:
        from embtui.api.models import ModelSpec
        from embtui.errors import EmbtuiError

        model = self.query_one("#add-model", Input).value.strip()
        name = self.query_one("#add-name", Input).value.strip()
        if not model:
            self.show_spec_error("type a hub id, a local model folder or bm25")
            return
        if not name:
            name = Path(model).name if model.startswith((".", "/", "~")) else model
        if self.data is not None and name in self.data.models:
            self.show_spec_error(f"a model named '{name}' is already saved: edit it below, or give "
                                 "the new one another name")
            return
        try:
            spec = ModelSpec(model=model, name=name)
        except EmbtuiError as exc:
            self.show_spec_error(str(exc))
            return
        self.save_spec(name, spec.to_dict(), added=True)

    @work(thread=True, exclusive=True, group="save-spec", exit_on_error=False,
          description="save a model spec")
    def save_spec(self, name: str, spec: dict[str, Any], added: bool = False) -> None:
        from embtui.api.models import ModelSpec, check_model_name, resolve_source
        from embtui.errors import EmbtuiError

        store = self.store
        assert store is not None
        try:
            if added:  # an unknown name fails now (offline at once; online one hub call), not in a job
                check_model_name(ModelSpec.from_dict(spec), store)
            else:
                resolve_source(ModelSpec.from_dict(spec))  # a wrong path fails now, not in a job
            store.save_model(name, spec)
        except EmbtuiError as exc:
            self.post_message(self.SpecSaved(name, str(exc), added))
            return
        self.post_message(self.SpecSaved(name, None, added))

    @on(SpecSaved)
    def spec_saved(self, message: SpecSaved) -> None:
        if message.error is not None and message.pipeline is not None:
            from embtui.tui.screens.pipeline import PipelineScreen

            screen = PipelineScreen(message.pipeline, message.error)
            self.app.push_screen(screen, self._pipeline_entered)
            return
        if message.error is not None:
            self.show_spec_error(message.error)
            return
        self.show_spec_error("")
        if message.added:
            self.query_one("#add-model", Input).value = ""
            self.query_one("#add-name", Input).value = ""
            if message.name not in self.context.models:
                self.post_message(ModelToggled(message.name))
        self.editing = None
        self.notify(f"saved model spec '{message.name}'", timeout=3)
        self.post_message(WorkspaceChanged())

    # -- devices ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="devices", exit_on_error=False,
          description="list devices")
    def list_devices(self) -> None:
        lister: Callable[[], list[Any]] | None = getattr(self.app, "device_lister", None)
        if lister is None:
            from embtui.api.models import list_devices as lister
        try:
            devices = tuple(lister())
        except Exception as exc:  # noqa: BLE001 - shown in the table's place
            self.post_message(self.DevicesListed((), f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.DevicesListed(devices))

    @on(DevicesListed)
    def show_devices(self, message: DevicesListed) -> None:
        table = self.query_one("#device-table", DataTable)
        if message.error:
            table.clear()
            table.add_row("?", Text(message.error), "", "")
            return
        first = not self.devices
        self.devices = message.devices
        for d in message.devices:
            used = (d.total_memory - d.free_memory
                    if d.total_memory is not None and d.free_memory is not None else None)
            mem = f"{_gib(used)} / {_gib(d.total_memory)}"
            util = "" if d.utilization is None else f"{d.utilization:.0f}"
            if d.id in table.rows:
                table.update_cell(d.id, "memory used / total GiB", mem)
                table.update_cell(d.id, "util %", util)
            else:
                table.add_row(d.id, Text(d.name, overflow="ellipsis"), mem, util, key=d.id)
        if first:
            self._device_options()
