"""Chaos under load with an oracle: five faults, and no acknowledged event or notification lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.harness import Plan, run
from tests.chaos.system import Ports
from tests.integration.bus import free_port

# Brokers on PORT..PORT+2, controllers on PORT+100..PORT+102: clear of CI's 19092/19192
# (the test broker) and 19492..19594 (tests/integration/test_kafka_cluster.py).
CLUSTER_PORT = int(os.environ.get("ADVISERING_TEST_CHAOS_PORT", "19792"))
SERVE_PORT = int(os.environ.get("ADVISERING_TEST_CHAOS_SERVE_PORT", "0"))


@pytest.mark.integration
@pytest.mark.timeout(420)
def test_five_faults_under_load_lose_nothing_and_double_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every acked event is on the topic; the inbox has the oracle's ids once; only planted DLQ."""
    ports = Ports(CLUSTER_PORT, SERVE_PORT or free_port())
    outcome = run(Plan(), ports, tmp_path)
    with capsys.disabled():  # the table belongs in every run's output, passed or not
        print("\n" + outcome.table())
    assert [record.name for record in outcome.records] == [
        "kill leader", "pause worker", "kill worker", "restart serve", "brokers down"]
    assert outcome.found.acked > 0 and outcome.found.expected > 0
    assert not outcome.problems, "\n".join(outcome.problems)
