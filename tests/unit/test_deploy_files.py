"""The observability deploy files hold together (Docker cannot run here, so they are checked
by reading): compose, Prometheus, Grafana and the collector parse; what one names, the other
has; every metric the dashboard queries is one JCT exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from observability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DATABASE_GAUGES = {"jct_tasks", "jct_oldest_queued_task_age_seconds", "jct_running_jobs",
                   "jct_expired_leases", "jct_pending_uploads"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    return _yaml(ROOT / "docker-compose.yml")  # type: ignore[no-any-return]


def _exposed_names() -> set[str]:
    """Every sample name JCT's scrape can hold: the families' own and their suffixes."""
    names = set(DATABASE_GAUGES)
    for family in Metrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def test_compose_mounts_files_that_exist_and_scrapes_its_own_services() -> None:
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
    jobs = {job["job_name"]: job for job in _yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]}
    assert jobs["jct-api"]["static_configs"] == [{"targets": ["api:8000"]}]
    (workers,) = jobs["jct-worker"]["dns_sd_configs"]  # every replica of the worker service
    assert (workers["names"], workers["port"]) == (["worker"], 9464)
    assert services["api"]["environment"]["JCT_PORT"] == "8000"
    assert services["worker"]["environment"]["JCT_WORKER_METRICS_PORT"] == "9464"
    assert "9464" in services["worker"]["expose"]
    assert {"prometheus", "grafana"} <= set(services)
    assert "profiles" not in services["prometheus"] and "profiles" not in services["grafana"]
    assert services["otel-collector"]["profiles"] == ["tracing"] == services["jaeger"]["profiles"]
    assert set(compose["volumes"]) >= {"prometheus-data", "grafana-data"}


def test_the_collector_sends_what_it_receives_to_jaeger() -> None:
    collector = _yaml(DEPLOY / "otel" / "collector.yml")
    pipeline = collector["service"]["pipelines"]["traces"]
    assert set(pipeline["receivers"]) <= set(collector["receivers"])
    assert set(pipeline["exporters"]) <= set(collector["exporters"])
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_the_dashboard_is_provisioned_and_queries_only_jct_metrics() -> None:
    """Its panels use the provisioned data source and cover throughput, queue wait, failures by
    action, lease rescues and pending uploads, with metric names JCT really exposes."""
    (source,) = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    (provider,) = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "jct.yml")["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "jct.json").read_text())
    exposed = _exposed_names()
    titles = " | ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("throughput", "queue wait", "failures by action", "lease rescues", "pending uploads"):
        assert topic in titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        for target in panel["targets"]:
            used = set(re.findall(r"\bjct_[a-z0-9_]+", target["expr"]))
            assert used and used <= exposed, (panel["title"], used - exposed)
