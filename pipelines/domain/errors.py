"""The two ways an input event can fall out of a job, shared by every job family.

- :class:`Skip`: the event is not for this job (another action, no edata, not a user object...).
  The reference counts these as skipped and moves on; so do we, with the reason in the metric name.
- :class:`InvalidRequest`: the event is meant for this job but cannot be processed as it stands
  (missing or wrong-typed fields, an impossible request). It goes to the job's failed output
  with its message as the reason; the reference often crashed or restarted instead.

Family-specific errors (``InvalidAssessment``, ``InvalidNotification``, ``CertError``...) subclass
``InvalidRequest`` so one validation step (``pipelines.transforms.validate``) can route them all.
"""

from __future__ import annotations


class Skip(Exception):  # noqa: N818 - a counted control outcome, not an error
    """Not an event for this job: counted as skipped, never a failure.

    Every skip is counted under the job's general skip counter; ``metric`` also names a counter
    for this kind of skip (why events were skipped, e.g. relation-cache-updater's
    ``skipped-mimetype-count``), so the reason costs no second pass over the events.
    """

    def __init__(self, reason: str = "", metric: str | None = None):
        super().__init__(reason)
        self.metric = metric


class InvalidRequest(ValueError):
    """An event for this job that cannot be processed; the message is the failure reason."""
