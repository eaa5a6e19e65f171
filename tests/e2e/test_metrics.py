"""``GET /metrics``: the Prometheus text format, with task counts read from PostgreSQL."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from harness.stack import Stack
from harness.wait import wait_until

STATUSES = ("queued", "running", "done", "failed", "cancelled")


def _families(stack: Stack) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = stack.get("/metrics")
    assert response.status_code == 200
    return {family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
            for family in text_string_to_metric_families(response.text)}


def _database_counts(stack: Stack) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(n) for status, n in
                   stack.query("SELECT status, count(*) FROM tasks GROUP BY status")})
    return counts


def test_metrics_is_prometheus_text_with_help_and_type(postgres_stack: Stack) -> None:
    """The body parses with Prometheus' own parser; every family has HELP and a TYPE."""
    response = postgres_stack.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["X-Trace-Id"]
    families = list(text_string_to_metric_families(response.text))
    names = {family.name for family in families}
    assert {"jct_tasks", "jct_oldest_queued_task_age_seconds", "jct_running_jobs",
            "jct_expired_leases"} <= names
    for family in families:
        assert family.documentation, family.name
        assert family.type == "gauge", family.name
        assert all(sample.value >= 0 for sample in family.samples), family.name


def test_task_counts_by_status_match_the_database(postgres_stack: Stack) -> None:
    """``jct_tasks{status}`` has a series for every status (zeros included) and equals the rows."""
    for spec in ({"name": "metrics-ok", "steps": [{"action": "echo", "params": {"message": "m"}}]},
                 {"name": "metrics-fail", "max_attempts": 1,
                  "steps": [{"action": "fail", "params": {"message": "drill", "retryable": False}}]}):
        task_id = postgres_stack.post("/enqueue", json=spec).json()["task_id"]
        postgres_stack.wait_status(task_id)

    def consistent() -> dict[str, int] | None:
        # Tasks of other tests may still be moving; a scrape between two reads that agree is stable.
        before = _database_counts(postgres_stack)
        scraped = _families(postgres_stack)["jct_tasks"]
        after = _database_counts(postgres_stack)
        by_status = {dict(labels)["status"]: int(value) for labels, value in scraped.items()}
        return by_status if before == after == by_status else None

    counts = wait_until(consistent, timeout=30, interval=0.2, what="metrics equal to the tasks table")
    assert set(counts) == set(STATUSES)
    assert counts["done"] >= 1
    assert counts["failed"] >= 1
