"""The two ceilings JCT is measured against: ``pg_ceiling`` (JCT's per-task SQL run by pgbench,
no Python in between) and ``bare_gunicorn`` (a trivial JSON endpoint under JCT's gunicorn
settings, driven by the same client as JCT's enqueue)."""
