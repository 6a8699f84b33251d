"""The simulator: deterministic, valid, time-ordered, and the shipped rules fire on it."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from pathlib import Path

import orjson
import pytest

from advisering.cli.main import main
from advisering.dev.simulator import CET, Municipality, simulate, synthetic_cpr
from advisering.edge.prepare import prepare_event
from advisering.engine.evaluate import process
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState
from advisering.engine.rules import load_rules
from advisering.events import Rejection
from advisering.kafka.topics import load_vocabulary
from advisering.privacy import is_cpr

ROOT = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 11, 1, tzinfo=CET)


def digest(seed: int, citizens: int = 500, days: int = 20) -> str:
    stream = simulate(Municipality(seed=seed, citizens=citizens, days=days, start=START))
    return hashlib.sha256(b"".join(orjson.dumps(e) for e in stream)).hexdigest()


def test_same_seed_gives_the_same_stream() -> None:
    """Two runs with one seed give byte-identical streams; another seed differs."""
    assert digest(11) == digest(11)
    assert digest(11) != digest(12)


def test_synthetic_cpr_numbers_are_valid_and_unique() -> None:
    """Citizen numbers map to distinct CPR numbers, each valid in form."""
    numbers = [synthetic_cpr(n)[0] for n in range(0, 3_000_000, 37)]
    assert len(set(numbers)) == len(numbers)
    assert all(is_cpr(cpr) for cpr in numbers)


def test_too_many_citizens_is_refused() -> None:
    """Beyond the CPR serial range the simulator refuses instead of repeating numbers."""
    with pytest.raises(ValueError, match="million"):
        synthetic_cpr(36_500 * 4_000 + 1)


def test_stream_is_time_ordered_and_passes_validation() -> None:
    """Every simulated event passes the publishing edge, in non-decreasing time order."""
    vocabulary = load_vocabulary(ROOT / "topics")
    events = list(simulate(Municipality(seed=5, citizens=3_000, days=30, start=START)))
    assert len(events) > 1_000
    times = [dt.datetime.fromisoformat(e["time"]) for e in events]
    assert times == sorted(times)
    assert all(START <= t < START + dt.timedelta(days=30) for t in times)
    rejected = [r for r in (prepare_event(e, b"k" * 32, vocabulary) for e in events)
                if isinstance(r, Rejection)]
    assert rejected == []
    types = Counter(e["type"] for e in events)
    for kind in ("case.opened", "case.status-changed", "case.closed", "appointment.missed",
                 "benefit.changed", "citizen.admitted", "citizen.discharged"):
        assert types[kind] > 0, kind


def test_rules_fire_on_the_simulation_at_plausible_rates() -> None:
    """Every shipped rule fires, and notifications are a small share of the events."""
    vocabulary = load_vocabulary(ROOT / "topics")
    matcher = Matcher(load_rules(ROOT / "rules", vocabulary))
    states: dict[str, CitizenState] = {}
    fired: Counter[str] = Counter()
    per_recipient: Counter[str] = Counter()
    events = list(simulate(Municipality(seed=9, citizens=30_000, days=30, start=START)))
    for raw in events:
        event = prepare_event(raw, b"k" * 32, vocabulary)
        assert not isinstance(event, Rejection)
        for party in event.data.parties:
            outcome = process(states.get(party.citizen), event, party.citizen, matcher, "now")
            states[party.citizen] = outcome.state
            for notification in outcome.notifications:
                fired[notification.rule] += 1
                recipient = notification.recipient
                per_recipient[recipient.caseworker or recipient.unit] += 1
    assert set(fired) == {compiled.rule.id for compiled in matcher.compiled}
    share = sum(fired.values()) / len(events)
    assert 0.002 < share < 0.10, share
    assert max(per_recipient.values()) < 40


def test_missing_work_dir_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`simulate --work-dir` naming no directory exits 2 with the path, not a traceback."""
    monkeypatch.setenv("ADVISERING_TOPICS_DIR", str(ROOT / "topics"))
    missing = tmp_path / "nowhere"
    assert main(["simulate", "--work-dir", str(missing), "--out", str(tmp_path / "e")]) == 2
    assert f"--work-dir {missing} is not a directory" in capsys.readouterr().err


def test_the_http_sender_sends_again_after_the_connection_drops_mid_response() -> None:
    """A serve restarting mid-request (no response, connection closed) gets the same batch again."""
    import http.server  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from advisering.dev.sim_publish import HttpSender  # noqa: PLC0415

    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            if len(bodies) == 1:
                self.close_connection = True  # dropped without a response
                return
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"accepted": 1}')

        def log_message(self, *_args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sender = HttpSender(f"http://127.0.0.1:{server.server_port}", {"momentum": "key"},
                            timeout=5, max_retries=3)
        assert sender.send([{"source": "momentum", "id": "e-1"}]) == 1
    finally:
        server.shutdown()
    assert len(bodies) == 2 and bodies[0] == bodies[1]
