"""The Train pane: fine-tune a model on the current project as a background job, with live curves.

The form holds the base model (default: the first selected dense model), the new model's name, the
loss, epochs, learning rate, batch size, mined hard negatives, max length and an optional cap on
pairs; ctrl+s starts the job (the same job as `embtui finetune --detach`: it survives the app).
While it runs the pane draws the training loss and the dev metric (with the base model's dev value)
as sparklines, step/total, samples/s and ETA, and the trainer's warnings; c cancels (the job keeps
a checkpoint: the Jobs pane's r resumes it). When it is done the new model is in the Models pane
and its test run in Metrics, with the base and a paired test in the summary line.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Sparkline, Static

from embtui.tui.actions import bindings
from embtui.tui.panes.base import Pane, focus_now
from embtui.tui.widgets.progress_text import eta

LOSS_CHOICES = (("MNRL", "mnrl"), ("cached MNRL", "cmnrl"), ("GIST (base as guide)", "gist"))
FIELDS = (  # rows of (id, label, default, width), each row fitting a 57-column pane (80x24)
    (("train-epochs", "epochs", "1", 4),),
    (("train-lr", "lr", "2e-5", 6), ("train-batch", "batch", "32", 3), ("train-negatives", "hard neg", "0", 2)),
    (("train-maxlen", "max len", "256", 5), ("train-pairs", "pairs", "", 6)),
)


class TrainPane(Pane):
    PANE_ID = "train"
    BINDINGS = bindings("train")
    can_focus = True  # escape from a box lands on the pane itself, where c and 1-9 act

    DEFAULT_CSS = """
    TrainPane { padding: 0 1; }
    TrainPane Horizontal { height: auto; }
    TrainPane .train-label { width: auto; padding: 1 1 0 0; }
    TrainPane #train-base { width: 26; }
    TrainPane #train-name { width: 20; }
    TrainPane #train-loss { width: 22; }
    TrainPane Checkbox { border: none; padding: 1 0 0 1; height: 3; }
    TrainPane Sparkline { height: 3; margin: 0 0 1 0; }
    TrainPane #train-status, TrainPane #train-result, TrainPane #train-warnings { height: auto; }
    """

    class Started(Message, bubble=False):
        def __init__(self, job_id: str | None, error: str = "") -> None:
            super().__init__()
            self.job_id = job_id
            self.error = error

    class CurvesRead(Message, bubble=False):
        def __init__(self, job: Any, curves: dict[str, Any], result: dict[str, Any] | None) -> None:
            super().__init__()
            self.job = job
            self.curves = curves
            self.result = result

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id: str | None = None
        self.curves: dict[str, Any] = {}
        self.job_state: str = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield from self._form()
            yield from self._curves()

    def _form(self) -> ComposeResult:
        with Horizontal():
            yield Label("base", classes="train-label")
            yield Input(id="train-base", placeholder="all-MiniLM-L6-v2")
            yield Label("new", classes="train-label")
            yield Input(id="train-name", placeholder="e.g. minilm-ft")
        for i, row in enumerate(FIELDS):
            with Horizontal():
                if i == 0:
                    yield Label("loss", classes="train-label")
                    yield Select(LOSS_CHOICES, value="mnrl", allow_blank=False, id="train-loss")
                for fid, label, default, width in row:
                    yield Label(label, classes="train-label")
                    box = Input(default, id=fid, placeholder="all" if fid == "train-pairs" else "")
                    box.styles.width = width + 6
                    yield box
        yield Checkbox("drop leaked queries (train without them instead of refusing)",
                       id="train-drop-leaked")

    def _curves(self) -> ComposeResult:
        yield Static("e: edit the form · ctrl+s: start · c: cancel · the job runs detached (Jobs pane: r resumes it)",
                     id="train-status")
        yield Label("training loss", id="train-loss-label")
        yield Sparkline([], id="train-loss-curve")
        yield Label("dev metric", id="train-dev-label")
        yield Sparkline([], id="train-dev-curve")
        yield Static("", id="train-warnings")
        yield Static("", id="train-result")

    def focus_default(self) -> None:
        focus_now(self)  # the pane, not a box: pane keys keep working; e moves into the form

    def action_edit_form(self) -> None:
        focus_now(self.query_one("#train-base", Input))

    def focus_body(self) -> None:
        focus_now(self)

    def reload(self) -> None:
        ctx = self.context
        base = self.query_one("#train-base", Input)
        if not base.value:
            dense = self.dense_models()  # a pipeline is no base to fine-tune either
            base.value = dense[0] if dense else "all-MiniLM-L6-v2"
        name = self.query_one("#train-name", Input)
        if not name.value:
            name.value = f"{base.value.split('/')[-1]}-ft"
        if self.job_id is None:  # pick up a fine-tuning job started elsewhere (CLI, a second app)
            jobs = [j for j in getattr(self.app, "jobs", ()) if j.kind == "finetune"
                    and j.project == (ctx.project or "")]
            if jobs:
                self.follow(jobs[0].id)

    # -- start -----------------------------------------------------------------------------------
    def _value(self, fid: str) -> str:
        return self.query_one(f"#{fid}", Input).value.strip()

    def request(self) -> Any:
        """The FinetuneRequest the form describes (EmbtuiError naming the field that is wrong)."""
        from embtui.api.training import FinetuneRequest, TrainConfig
        from embtui.errors import EmbtuiError

        project = self.context.project
        if not project:
            raise EmbtuiError("no project: pick one in the workspace tree first")

        def num(fid: str, kind: type, label: str) -> Any:
            raw = self._value(fid)
            try:
                return kind(raw)
            except ValueError:
                raise EmbtuiError(f"{label}: '{raw}' is not a {'whole ' if kind is int else ''}number") from None

        pairs = self._value("train-pairs")
        loss = self.query_one("#train-loss", Select).value
        cfg = TrainConfig(loss=str(loss), epochs=num("train-epochs", float, "epochs"),
                          lr=num("train-lr", float, "lr"), batch_size=num("train-batch", int, "batch"),
                          max_seq_length=num("train-maxlen", int, "max len"))
        return FinetuneRequest(project=project, base=self._value("train-base") or "all-MiniLM-L6-v2",
                               name=self._value("train-name"), config=cfg,
                               hard_negatives=num("train-negatives", int, "hard negatives"),
                               max_pairs=num("train-pairs", int, "pairs") if pairs else None,
                               drop_leaked=self.query_one("#train-drop-leaked", Checkbox).value)

    def action_start_training(self) -> None:
        from embtui.errors import EmbtuiError

        if self.store is None:
            return
        try:
            req = self.request()
        except EmbtuiError as exc:
            self.show_status(Text(str(exc), style="red"))
            return
        self.show_status("starting…")
        self.submit(req)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_start_training()

    @work(thread=True, exclusive=True, group="train-submit", exit_on_error=False, description="start training")
    def submit(self, req: Any) -> None:
        from embtui.api.training import finetune
        from embtui.errors import EmbtuiError

        try:
            res = finetune(self.store.ws, req, detach=True)
            self.post_message(self.Started(res["job_id"]))
        except EmbtuiError as exc:
            self.post_message(self.Started(None, str(exc)))

    @on(Started)
    def started(self, message: Started) -> None:
        if message.job_id is None:
            self.show_status(Text(message.error, style="red"))
            return
        self.show_status(f"job {message.job_id} started")
        self.query_one("#train-result", Static).update("")
        self.follow(message.job_id)

    # -- follow ----------------------------------------------------------------------------------
    def follow(self, job_id: str) -> None:
        self.job_id = job_id
        if not getattr(self, "_timer", None):
            self._timer = self.set_interval(0.5, self.poll, name="train-poll")
        self.poll()

    def poll(self) -> None:
        if self.job_id is not None and self.store is not None:
            self.read_curves(self.job_id)

    @work(thread=True, exclusive=True, group="train-curves", exit_on_error=False, description="read curves")
    def read_curves(self, job_id: str) -> None:
        from embtui.api.jobs import get_job, job_curves, job_result

        ws = self.store.ws
        job = get_job(ws, job_id, log_lines=0)
        self.post_message(self.CurvesRead(job, job_curves(ws, job_id),
                                          job_result(ws, job_id) if job.state == "done" else None))

    @on(CurvesRead)
    def show_curves(self, message: CurvesRead) -> None:
        job, c = message.job, message.curves
        self.curves, self.job_state = c, job.state
        loss = [v for _s, v in c.get("loss") or []]
        metric = c.get("metric", "ndcg@10")
        dev = [m.get(metric, 0.0) for _s, m in c.get("dev") or []]
        self.query_one("#train-loss-curve", Sparkline).data = loss
        self.query_one("#train-dev-curve", Sparkline).data = dev
        self.query_one("#train-loss-label", Label).update(
            "training loss" + (f": {loss[-1]:.4f} (first {loss[0]:.4f})" if loss else ""))
        base = (c.get("base_dev") or {}).get(metric)
        self.query_one("#train-dev-label", Label).update(
            f"dev {metric}" + (f": {dev[-1]:.4f}, best {max(dev):.4f}" if dev else "")
            + (f" (base {base:.4f})" if base is not None else ""))
        step, total = c.get("step", 0), c.get("total_steps", 0)
        line = (f"job {job.id} · {job.model} · {job.state} · step {step}/{total or '?'} · "
                f"{c.get('samples_per_s', 0)} samples/s · eta {eta(c.get('eta_s'))}")
        if job.state == "failed":
            line += f" · {job.error}"
        self.show_status(Text(line, style="red" if job.state == "failed" else ""))
        warns = c.get("warnings") or []
        self.query_one("#train-warnings", Static).update(
            Text("\n".join(f"warning: {w}" for w in warns), style="yellow") if warns else "")
        res = message.result
        if res:
            vs = res.get("vs_base") or {}
            text = f"done: model '{res['model']}' (best step {res.get('best_step')})"
            if res.get("run"):
                text += (f"; test run {res['run']['id']} {vs.get('metric')} {res['run'].get(vs.get('metric'), 0):.4f}"
                         f" vs base {res['base_run'].get(vs.get('metric'), 0):.4f} ({vs.get('delta', 0):+.4f}, "
                         f"p = {vs.get('p_permutation')}, {vs.get('verdict')})")
            self.query_one("#train-result", Static).update(Text(text, style="bold"))
        if job.finished and getattr(self, "_timer", None):
            self._timer.stop()
            self._timer = None

    def show_status(self, text: Any) -> None:
        self.query_one("#train-status", Static).update(text)

    def action_cancel_training(self) -> None:
        if self.job_id is None or self.store is None:
            return
        from embtui.api.jobs import cancel_job

        cancel_job(self.store.ws, self.job_id)
        self.show_status(f"job {self.job_id}: cancel requested (stops after this step)")
        self.follow(self.job_id)
