"""The use-case layer: what embtui does, as one Python API for the CLI, the TUI and notebooks.

Front ends parse and present; this layer validates once, resolves models once and decides once
(for example whether an identical run exists), then runs the work inline or as a detached job.
Today it holds evaluation planning (evaluations.py); the rest of the use cases move here in the
steps listed in docs/architecture.md.
"""

from embtui.api.evaluations import EvalPlan, PlannedEval, plan_evaluation, run_inline, submit_jobs

__all__ = ["EvalPlan", "PlannedEval", "plan_evaluation", "run_inline", "submit_jobs"]
