"""The Helm chart agrees with the code: its dashboard, topics, version and schema."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from prometheus_client.metrics import MetricWrapperBase

from advisering import metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "advisering"

# What prometheus-client exports for one declared metric, by its type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "info": ("_info",),
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset", "le", "inf", "nan"}


def exported_names() -> set[str]:
    """Every series name advisering/metrics.py makes prometheus-client export."""
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels, keywords removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = match.group(0)
        if re.match(r"\s*\(", expr[match.end():]) or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the chart's Grafana dashboard."""
    board = json.loads((CHART / "files" / "dashboard.json").read_text(encoding="utf-8"))
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_dashboard_queries_name_only_exported_metrics() -> None:
    """Every metric a dashboard query reads is one advisering/metrics.py exports."""
    exported = exported_names()
    queries = dashboard_queries()
    assert queries
    for expr in queries:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, sorted(names - exported))


def test_dashboard_covers_the_issue_panels() -> None:
    """The dashboard reads events, notifications, dead letters, rules, webhooks and feedback."""
    read = set().union(*(metric_names(expr) for expr in dashboard_queries()))
    for name in ("advisering_events_processed_total", "advisering_notifications_emitted_total",
                 "advisering_dead_letters_total", "advisering_ruleset_info",
                 "advisering_webhook_deliveries_total", "advisering_feedback_total",
                 "advisering_processing_seconds_bucket", "advisering_rules_watcher_up"):
        assert name in read, name


def test_metric_name_parser_finds_an_unknown_metric() -> None:
    """The query check would notice a metric the code does not export."""
    expr = 'sum by (rule) (rate(advisering_nonexistent_total{rule="x"}[5m])) / up'
    assert metric_names(expr) == {"advisering_nonexistent_total", "up"}
    assert not metric_names(expr) <= exported_names()


def test_chart_topics_are_the_repository_topics() -> None:
    """The chart's files/topics/ (KafkaTopics, the hook Job) equal topics/*.yaml byte for byte."""
    ours = {path.name: path.read_bytes() for path in (ROOT / "topics").glob("*.yaml")}
    chart = {path.name: path.read_bytes() for path in (CHART / "files" / "topics").glob("*.yaml")}
    assert ours
    assert chart == ours, "copy topics/*.yaml to helm/advisering/files/topics/"


def test_chart_app_version_is_the_package_version() -> None:
    """Chart.yaml's appVersion is the version in pyproject.toml (the image tag by default)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == project["project"]["version"]


def objects_without_closed_keys(schema: Any, where: str = "") -> list[str]:
    """Every object level of a JSON schema with properties that still admits unknown keys."""
    found = []
    if isinstance(schema, dict):
        if "properties" in schema and schema.get("additionalProperties") is not False:
            found.append(where or "/")
        for key, value in schema.items():
            found += objects_without_closed_keys(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += objects_without_closed_keys(value, f"{where}/{index}")
    return found


def merged(base: Any, override: Any) -> Any:
    """Helm's merge of a values file over the chart's defaults (maps deep, the rest replaced)."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {key: merged(base.get(key), override[key]) if key in override else base[key]
                for key in base.keys() | override.keys()}
    return override


def test_values_schema_closes_every_object_and_accepts_the_defaults() -> None:
    """values.schema.json has additionalProperties false at every level and takes values.yaml."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert objects_without_closed_keys(schema) == []
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(values, schema)
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        ci_values = yaml.safe_load(path.read_text(encoding="utf-8"))
        jsonschema.validate(merged(values, ci_values), schema)


def test_alert_rules_name_only_exported_metrics() -> None:
    """Every advisering_* series the alert rules read is one advisering/metrics.py exports."""
    template = (CHART / "templates" / "prometheusrule.yaml").read_text(encoding="utf-8")
    names = set(re.findall(r"\badvisering_[a-z0-9_]+", template))
    assert "advisering_rules_watcher_up" in names
    assert names <= exported_names(), sorted(names - exported_names())
