"""Job runner: detached worker processes, progress, cancel, resume."""

from embtui.jobs.api import (JobInfo, cancel_job, follow_job, get_job, job_log, list_jobs,
                             resume_job, set_jobs_per_device, start_job, submit_eval)

__all__ = ["JobInfo", "cancel_job", "follow_job", "get_job", "job_log", "list_jobs", "resume_job",
           "set_jobs_per_device", "start_job", "submit_eval"]
