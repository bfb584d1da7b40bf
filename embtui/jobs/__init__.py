"""Job runner: detached worker processes, progress, cancel, resume."""

from embtui.jobs.api import (JobInfo, cancel_job, follow_job, get_job, job_curves, job_log,
                             job_result, list_jobs, resume_job, set_jobs_per_device, start_job,
                             submit_eval, submit_finetune)

__all__ = ["JobInfo", "cancel_job", "follow_job", "get_job", "job_curves", "job_log", "job_result",
           "list_jobs", "resume_job", "set_jobs_per_device", "start_job", "submit_eval",
           "submit_finetune"]
