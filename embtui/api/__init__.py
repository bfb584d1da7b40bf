"""The use-case layer: what embtui does, as one Python API for the CLI, the TUI and notebooks.

Front ends parse and present; this layer validates once, resolves models once and decides once
(for example whether an identical run exists), then runs the work inline or as a detached job.
The CLI and the TUI import nothing else from embtui but pure analysis/ (tests/test_architecture.py):
evaluations.py (plan, run inline, submit), views.py (frozen views a worker loads whole),
judgments.py (overlay judgments, tags), report/ and negatives.py (write-ups and exports), and one
module per family of operations the front ends use: workspace, projects, models, runs, compare,
jobs, live.
"""

from embtui.api.evaluations import EvalPlan, PlannedEval, plan_evaluation, run_inline, submit_jobs

__all__ = ["EvalPlan", "PlannedEval", "plan_evaluation", "run_inline", "submit_jobs"]
