"""A modal with a job's log, re-read every second while the job runs."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

LOG_REFRESH_S = 1.0


class JobLogScreen(ModalScreen[None]):
    """The log of one job; escape or q closes it."""

    BINDINGS = [Binding("escape,q,l", "dismiss", "Close")]

    DEFAULT_CSS = """
    JobLogScreen { align: center middle; }
    JobLogScreen > VerticalScroll {
        width: 95%; height: 90%; border: round $primary; background: $surface; padding: 0 1;
    }
    """

    class LogRead(Message, bubble=False):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, workspace_root: str, job_id: str) -> None:
        super().__init__()
        self.workspace_root = workspace_root
        self.job_id = job_id
        self.text = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"job {self.job_id} log"
            scroll.border_subtitle = "escape closes"
            yield Static("reading…", id="log-text")

    def on_mount(self) -> None:
        self.read_log()
        self.set_interval(LOG_REFRESH_S, self.read_log)

    @work(thread=True, exclusive=True, group="job-log", exit_on_error=False,
          description="read a job log")
    def read_log(self) -> None:
        from embtui.api.jobs import job_log

        try:
            text = job_log(self.workspace_root, self.job_id)
        except Exception as exc:  # noqa: BLE001 - shown instead of the log
            text = f"could not read the log: {type(exc).__name__}: {exc}"
        if not isinstance(text, str):
            text = "\n".join(text)
        self.post_message(self.LogRead(text))

    @on(LogRead)
    def show_log(self, message: LogRead) -> None:
        if message.text == self.text:
            return
        self.text = message.text
        scroll = self.query_one(VerticalScroll)
        at_end = scroll.scroll_y >= scroll.max_scroll_y - 1
        self.query_one("#log-text", Static).update(Text(message.text or "(empty log)"))
        if at_end:
            scroll.call_after_refresh(scroll.scroll_end, animate=False)
