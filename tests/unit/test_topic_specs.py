"""Topics as code: the real topic files load, bad files are rejected by file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from advisering.kafka.topics import TOPIC_NAMES, citizen_topic_spec, load_topic_specs
from advisering.settings import Settings
from advisering.yamlfiles import YamlFileError

ROOT = Path(__file__).resolve().parents[2]


def _copy_topics(tmp_path: Path) -> Path:
    target = tmp_path / "topics"
    shutil.copytree(ROOT / "topics", target)
    return target


def test_real_topic_files_declare_the_five_topics() -> None:
    """The shipped topics/ declares exactly the five topics of DESIGN.md."""
    specs = load_topic_specs(ROOT / "topics")
    assert sorted(specs) == sorted(TOPIC_NAMES)
    assert specs["advisering.rules"].config["cleanup.policy"] == "compact"
    assert specs["advisering.case-events"].vocabulary is not None


def test_repartition_topic_is_declared_and_named_for_the_worker(tmp_path: Path) -> None:
    """citizen-events.yaml gives retention and min ISR; the worker's id and partitions the rest."""
    settings = Settings(worker_app_id="kommune-worker", worker_partitions=4)
    spec = citizen_topic_spec(ROOT / "topics", settings)
    assert (spec.name, spec.partitions) == ("kommune-worker-citizen-events", 4)
    assert spec.config == {"cleanup.policy": "delete", "retention.ms": "604800000",
                           "min.insync.replicas": "2"}
    topics = _copy_topics(tmp_path)
    (topics / "citizen-events.yaml").unlink()
    with pytest.raises(YamlFileError, match=r"\{worker_app_id\}-citizen-events is not declared"):
        load_topic_specs(topics)


def test_unknown_field_names_file_and_field(tmp_path: Path) -> None:
    """An unknown field is reported with the file name and the field path."""
    topics = _copy_topics(tmp_path)
    path = topics / "audit.yaml"
    path.write_text(path.read_text() + "partitons: 3\n")
    with pytest.raises(YamlFileError) as caught:
        load_topic_specs(topics)
    problem = caught.value.problems[0]
    assert problem.file == path
    assert problem.path == "partitons"
    assert "unknown field" in str(caught.value)


def test_bad_partitions_value_is_reported(tmp_path: Path) -> None:
    """A non-positive partition count is rejected naming the field."""
    topics = _copy_topics(tmp_path)
    path = topics / "notifications.yaml"
    path.write_text(path.read_text().replace("partitions: 6", "partitions: 0"))
    with pytest.raises(YamlFileError) as caught:
        load_topic_specs(topics)
    assert caught.value.problems[0].path == "partitions"
    assert "notifications.yaml" in str(caught.value)


def test_rules_topic_must_be_compacted(tmp_path: Path) -> None:
    """advisering.rules with cleanup.policy delete is refused."""
    topics = _copy_topics(tmp_path)
    path = topics / "rules.yaml"
    path.write_text(path.read_text().replace("cleanup.policy: compact", "cleanup.policy: delete"))
    with pytest.raises(YamlFileError, match="compact"):
        load_topic_specs(topics)


def test_missing_topic_is_reported(tmp_path: Path) -> None:
    """Leaving out one of the five topics is an error naming it."""
    topics = _copy_topics(tmp_path)
    (topics / "audit.yaml").unlink()
    with pytest.raises(YamlFileError, match=r"advisering\.audit is not declared"):
        load_topic_specs(topics)


def test_invented_topic_name_is_refused(tmp_path: Path) -> None:
    """A topic name outside the fixed five is refused with the name field."""
    topics = _copy_topics(tmp_path)
    path = topics / "audit.yaml"
    path.write_text(path.read_text().replace("name: advisering.audit", "name: advisering.other"))
    with pytest.raises(YamlFileError) as caught:
        load_topic_specs(topics)
    assert caught.value.problems[0].path == "name"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    """Broken YAML is reported with the file and line."""
    topics = _copy_topics(tmp_path)
    path = topics / "audit.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(YamlFileError) as caught:
        load_topic_specs(topics)
    assert caught.value.problems[0].line is not None
    assert "audit.yaml" in str(caught.value)


def test_development_override_caps_min_insync_replicas() -> None:
    """Overriding the replication factor to 1 caps min.insync.replicas at 1."""
    spec = load_topic_specs(ROOT / "topics")["advisering.case-events"]
    dev = spec.effective(partitions=2, replication_factor=1)
    assert dev.replication_factor == 1
    assert dev.partitions == 2
    assert dev.config["min.insync.replicas"] == "1"
    assert spec.replication_factor == 3
