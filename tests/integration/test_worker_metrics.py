"""The worker's /metrics after a scenario: the named series with the right values."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from advisering.dev.scenario import DEMO_EXPECTED, demo_scenario
from tests.integration.bus import WorkerProcess, bus_env, run_cli
from tests.integration.test_pipeline import publish_waves, sample


def test_metrics_after_the_demo_scenario(bootstrap: str, tmp_path: Path) -> None:
    """Per-rule matches and notifications, events and latency count match the scenario."""
    env = bus_env(bootstrap)
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        worker.wait_idle(bootstrap)  # a new group first works through what is on the topic
        before = worker.metrics()
        publish_waves(worker, bootstrap, tmp_path, demo_scenario())
        after = worker.metrics()
    finally:
        worker.stop()

    def delta(name: str) -> float:
        return sample(after, name) - sample(before, name)

    emitted = Counter(rule for rule, _, _ in DEMO_EXPECTED)
    for rule, count in emitted.items():
        assert delta(f'advisering_notifications_emitted_total{{rule="{rule}"}}') == count
    matches = {"ny-boernesag-orientering": 2, "sanktion-til-boernesag": 1,
               "flytning-til-alle": 1, "doedsfald-til-alle": 1, "indlaeggelse-til-hjemmepleje": 1,
               "udskrivning-til-hjemmepleje": 1, "udeblivelse-til-socialpsykiatri": 1}
    for rule, count in matches.items():
        assert delta(f'advisering_rule_matches_total{{rule="{rule}"}}') == count, rule
    events = sum(len(wave) for wave in demo_scenario())
    assert delta('advisering_events_processed_total{outcome="accepted"}') == events
    assert delta("advisering_processing_seconds_count") == events
    assert delta('advisering_dead_letters_total{reason="not_json"}') == 0
    assert delta('advisering_notifications_throttled_total{rule="flytning-til-alle"}') == 0
    assert sample(after, "advisering_ruleset_rules") == 8
    assert 'advisering_ruleset_info{version=' in after
