"""The durable timeline: one ``task_events`` row per transition, written inside the
transition's own transaction."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from models.db import Database
from states import Event

_INSERT = """
INSERT INTO task_events (task_id, trace_id, event, attrs)
VALUES (%(task_id)s, %(trace_id)s, %(event)s, %(attrs)s)
"""

_INSERT_MANY = """
INSERT INTO task_events (task_id, trace_id, event, attrs)
SELECT task_id, trace_id, %(event)s, %(attrs)s
  FROM unnest(%(task_ids)b::uuid[], %(trace_ids)b::uuid[]) AS t(task_id, trace_id)
"""


def record_event(db: Database, task_id: str, trace_id: str, event: Event, **attrs: Any) -> None:
    """Append one event (call inside the transition's transaction)."""
    db.execute(_INSERT, {"task_id": task_id, "trace_id": trace_id, "event": str(event),
                         "attrs": Jsonb(attrs)})


def record_events(db: Database, tasks: list[tuple[str, str]], event: Event, **attrs: Any) -> None:
    """The same event for several ``(task_id, trace_id)`` in one statement."""
    db.execute(_INSERT_MANY, {"event": str(event), "attrs": Jsonb(attrs),
                              "task_ids": [t[0] for t in tasks], "trace_ids": [t[1] for t in tasks]})
