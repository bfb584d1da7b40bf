"""Detached jobs as the user sees them: list, follow, cancel, resume, read the log, set how many
jobs share a device, and the workspace health check (`embtui doctor`)."""

from embtui.jobs import (JobInfo, cancel_job, follow_job, get_job, job_curves, job_log, job_result,
                         list_jobs, resume_job, set_jobs_per_device, start_job)
from embtui.jobs.doctor import check_workspace

__all__ = ["JobInfo", "cancel_job", "check_workspace", "follow_job", "get_job", "job_curves", "job_log",
           "job_result", "list_jobs", "resume_job", "set_jobs_per_device", "start_job"]
