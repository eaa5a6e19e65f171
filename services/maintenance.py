"""Background duties every worker process runs on a timer: take back attempts whose worker is
gone, re-send undelivered tasks, upload blobs that S3 refused earlier."""

from __future__ import annotations

import logging

from logging_setup import log_event
from runtime import Runtime
from services.artifacts import upload_pending
from services.dispatch import dispatch_due
from services.rescue import reap_dead_holders, rescue_lost_attempts

logger = logging.getLogger(__name__)


def maintenance_pass(rt: Runtime) -> None:
    """One pass of every duty; each failure is logged and the others still run."""
    for name, duty in (("reaper", reap_dead_holders), ("rescuer", rescue_lost_attempts),
                       ("dispatcher", dispatch_due), ("uploader", upload_pending)):
        try:
            duty(rt)
        except Exception as exc:  # keep the loop alive through outages; say why
            log_event(logger, f"{name}_error", f"{name} pass failed: {exc}", level=logging.WARNING)
