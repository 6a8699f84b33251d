"""Every Kafka client advisering builds takes the one KafkaConnection, security settings included.

The package's source is scanned for every client construction (confluent's
``Producer``/``Consumer``/``AdminClient``, the ``AsyncProducer`` around one,
aiokafka's clients, ``faust.App``): each must take its configuration from a
builder listed here, each builder's first parameter is typed
``KafkaConnection`` (or the Settings it is built from), and each builder,
given a SASL_SSL connection, renders TLS and the SCRAM login. A new client
or builder fails here until it is one of them.
"""

from __future__ import annotations

import ast
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advisering.audit.sink import audit_sink_consumer_config, audit_sink_producer_config
from advisering.edge.client import publisher_config
from advisering.http.server import ingest_producer_config
from advisering.inbox.consumer import inbox_consumer_config
from advisering.inbox.service import delivery_producer_config
from advisering.kafka.apply import admin_config
from advisering.kafka.clients import (
    case_events_producer_config,
    client_config,
    consumer_config,
    probe_config,
    producer_config,
)
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.reading import reader_config
from advisering.rulebook.deploy import deploy_producer_config
from advisering.rulebook.watch import watch_consumer_config
from advisering.settings import Settings
from advisering.worker.app import faust_options
from tests.unit.pki import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "advisering"
CLIENTS = {"Producer", "Consumer", "AdminClient", "AsyncProducer", "AIOKafkaProducer",
           "AIOKafkaConsumer", "AIOKafkaClient", "App"}
#: Constructions whose configuration is built by their caller: the wrapper itself.
WRAPPERS = {("advisering/kafka/producer.py", "Producer")}  # AsyncProducer(config)

Render = Callable[[KafkaConnection, Settings], dict[str, Any]]


def builders() -> dict[str, tuple[Callable[..., Any], Render]]:
    """Each configuration builder and how to call it with a connection or its settings."""
    return {
        "client_config": (client_config, lambda k, _s: client_config(k)),
        "producer_config": (producer_config, lambda k, _s: producer_config(
            k, client_id="t", delivery_timeout=30)),
        "consumer_config": (consumer_config, lambda k, _s: consumer_config(
            k, group="g", client_id="t")),
        "case_events_producer_config": (case_events_producer_config,
                                        lambda k, _s: case_events_producer_config(k)),
        "probe_config": (probe_config, lambda k, _s: probe_config(k)),
        "admin_config": (admin_config, lambda k, _s: admin_config(k)),
        "reader_config": (reader_config, lambda k, _s: reader_config(k, "test")),
        "inbox_consumer_config": (inbox_consumer_config,
                                  lambda k, _s: inbox_consumer_config(k, "g")),
        "watch_consumer_config": (watch_consumer_config, lambda k, _s: watch_consumer_config(k)),
        "deploy_producer_config": (deploy_producer_config,
                                   lambda k, _s: deploy_producer_config(k, 30)),
        "ingest_producer_config": (ingest_producer_config,
                                   lambda _k, s: ingest_producer_config(s)),
        "publisher_config": (publisher_config, lambda _k, s: publisher_config(s, 30)),
        "delivery_producer_config": (delivery_producer_config,
                                     lambda _k, s: delivery_producer_config(s)),
        "faust_options": (faust_options, lambda _k, s: faust_options(s, 1)),
        "audit_sink_consumer_config": (audit_sink_consumer_config,
                                       lambda k, _s: audit_sink_consumer_config(k, "g")),
        "audit_sink_producer_config": (audit_sink_producer_config,
                                       lambda k, _s: audit_sink_producer_config(k)),
    }


def _called(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            return node.func.id
        if isinstance(node.func, ast.Attribute):
            return node.func.attr
    return None


def constructions() -> list[tuple[str, int, str, str | None]]:
    """(module, line, client class, builder of its configuration) of every client made."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            client = _called(node)
            if client not in CLIENTS or not isinstance(node, ast.Call):
                continue
            if client == "App":  # faust.App(app_id, **faust_options(...))
                spread = [k.value for k in node.keywords if k.arg is None]
                found.append((module, node.lineno, client, _called(spread[0]) if spread else None))
            else:
                first = node.args[0] if node.args else None
                found.append((module, node.lineno, client,
                              _called(first) if first is not None else None))
    return found


def test_every_client_is_built_from_a_listed_builder() -> None:
    """Each construction's configuration comes from a builder below (or is the wrapper's)."""
    unlisted = [c for c in constructions()
                if c[3] not in builders() and (c[0], c[2]) not in WRAPPERS]
    assert unlisted == []
    clients = {c[2] for c in constructions()}
    assert {"Producer", "Consumer", "AdminClient", "AsyncProducer", "App"} <= clients


@pytest.mark.parametrize("name", sorted(builders()))
def test_every_builder_takes_a_typed_connection(name: str) -> None:
    """A builder's first parameter is a KafkaConnection or the Settings it is made from."""
    function, _ = builders()[name]
    hints = typing.get_type_hints(function)
    first = next(iter(hints))
    assert hints[first] in (KafkaConnection, Settings)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("name", sorted(builders()))
def test_every_builder_renders_tls_and_the_scram_login(pki: Pki, name: str) -> None:
    """Given SASL_SSL, every builder's configuration carries the protocol, CA and login."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka_security_protocol="SASL_SSL",
                        kafka_sasl_username="advisering-test", kafka_sasl_password="s3cret-pw",
                        kafka_ssl_ca_file=pki.ca)
    kafka = KafkaConnection.from_settings(settings)
    config = builders()[name][1](kafka, settings)
    if name == "faust_options":
        credentials = config["broker_credentials"]
        assert credentials.protocol.value == "SASL_SSL"
        assert credentials.mechanism.value == "SCRAM-SHA-512"
        assert (credentials.username, credentials.password) == ("advisering-test", "s3cret-pw")
        assert config["broker"] == ["kafka://127.0.0.1:1"]
        return
    assert config["bootstrap.servers"] == "127.0.0.1:1"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("advisering-test",
                                                                  "s3cret-pw")
    assert config["ssl.ca.location"] == str(pki.ca)


def test_only_the_connection_names_the_bootstrap_property() -> None:
    """``bootstrap.servers`` is written in one module: no client sets its brokers by hand."""
    naming = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                    if '"bootstrap.servers"' in p.read_text(encoding="utf-8"))
    assert naming == ["advisering/kafka/connection.py"]


def test_only_dev_tooling_connects_in_plaintext_by_hand() -> None:
    """``KafkaConnection.plaintext`` is for the local brokers ``kafka start`` runs, only."""
    using = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                   if "KafkaConnection.plaintext(" in p.read_text(encoding="utf-8"))
    assert using
    assert all(module.startswith("advisering/dev/") for module in using), using
