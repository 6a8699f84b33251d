"""The inbox page in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import expect, sync_playwright

from advisering.engine.notification import Notification
from advisering.http.server import create_web_app
from advisering.inbox import tokens
from advisering.inbox.service import BROADCAST, STORE
from advisering.settings import Settings
from tests.integration.bus import free_port

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
SECRET = "b" * 32
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def notification(nid: str, severity: str, minute: int, message: str) -> Notification:
    created = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=60 - minute)).isoformat()
    return Notification.from_json({
        "id": nid, "rule": "sanktion-til-boernesag",
        "title": "Sanktion eller stop af ydelse for en forælder med en åben børnesag",
        "severity": severity,
        "recipient": {"caseworker": "bf-0042", "unit": "bf-syd", "department": "boern-familie"},
        "related_case": {"id": f"DUBU-2025-{minute:04d}", "source": "dubu", "kle": "34.15.00"},
        "trigger": {"event_id": f"e-{nid}", "source": "momentum", "type": "benefit.changed",
                    "department": "jobcenter", "time": created},
        "citizen": "ps1-" + "c" * 52, "message": message,
        "legal_basis": "Barnets lov § 133 (skærpet underretningspligt) og tidlig indsats",
        "created": created,
    })


class ServerThread:
    """The inbox app on its own event loop in a thread, so Playwright's sync API can drive it."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.app, self.port = app, port
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def publish(self, notes: list[dict[str, Any]]) -> None:
        async def add() -> None:
            self.app[BROADCAST].publish(await self.app[STORE].add_many(notes))
        asyncio.run_coroutine_threadsafe(add(), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    settings = Settings(bootstrap_servers="127.0.0.1:1", token_secret=SECRET,
                        inbox_db=tmp_path / "inbox.sqlite3",
                        case_urls={"dubu": "https://dubu.kommune.example/sag/{id}"})
    running = ServerThread(create_web_app(settings, consume=False), free_port())
    running.start()
    running.publish([notification("n1", "normal", 10, "Borgeren i din sag DUBU-2025-0010 er "
                                  "registreret som flyttet (29.11.2026).")])
    yield running
    running.stop()


def test_caseworker_logs_in_sees_live_notification_marks_read_and_gives_feedback(
    server: ServerThread,
) -> None:
    """Log in with a dev token, see a notification arrive live, mark it read, give feedback."""
    OUTPUT.mkdir(exist_ok=True)
    token = tokens.issue(SECRET.encode(), "bf-0042", "boern-familie", "bf-syd")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="da-DK")
        # The page must work under serve's Content-Security-Policy: nothing it loads is blocked.
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        reply = page.goto(f"http://127.0.0.1:{server.port}/")
        assert reply is not None and "script-src 'self'" in reply.headers[
            "content-security-policy"]
        page.get_by_label("Adgangsnøgle (token)").fill(token)
        page.get_by_role("button", name="Log ind").click()
        expect(page.get_by_text("Logget ind som bf-0042 (boern-familie, enhed bf-syd)")
               ).to_be_visible()
        expect(page.locator("#unread")).to_have_text("1")
        expect(page.locator("body")).to_have_attribute("data-live", "on")
        server.publish([notification(
            "n2", "high", 50, "Borgeren i din sag DUBU-2025-0050 har fået en sanktion eller et "
            "stop af ydelse i jobcentret (29.11.2026). Overvej om familiens situation kræver "
            "opfølgning.")])
        newest = page.locator("li.note").first
        expect(newest).to_contain_text("har fået en sanktion", timeout=15_000)
        expect(page.locator("#unread")).to_have_text("2")
        expect(page.locator("#live")).to_contain_text("Nyt advis")
        expect(newest.locator(".badge")).to_have_text("Høj")
        expect(page.locator("#severity option[value=high]")).to_have_text("Høj")
        expect(newest.get_by_role("link", name="DUBU-2025-0050")).to_have_attribute(
            "href", "https://dubu.kommune.example/sag/DUBU-2025-0050")
        newest.get_by_text("Hvorfor får jeg dette advis?").click()
        expect(newest).to_contain_text("Barnets lov § 133")
        expect(newest).to_contain_text("ændret ydelse fra jobcentret")
        page.screenshot(path=str(OUTPUT / "inbox.png"), full_page=True)

        newest.get_by_role("button", name="Markér som læst").click()
        expect(page.locator("#unread")).to_have_text("1")
        read = page.locator("li.note[data-id='n2']")
        expect(read.locator(".status")).to_have_text("Læst")
        read.get_by_role("button", name="Ikke nyttig").click()
        expect(page.locator("li.note[data-id='n2']").get_by_role(
            "button", name="Ikke nyttig")).to_have_attribute("aria-pressed", "true")
        browser.close()
    assert not [line for line in console if "Content Security Policy" in line], console
    counts = asyncio.run_coroutine_threadsafe(server.app[STORE].feedback_counts(), server.loop)
    assert counts.result(30) == {("sanktion-til-boernesag", "not_useful"): 1}
    assert (OUTPUT / "inbox.png").stat().st_size > 10_000


def test_page_logs_out_when_the_stream_says_the_token_expired(server: ServerThread) -> None:
    """event: expired on the live stream takes the page back to the login with a message."""
    token = tokens.issue(SECRET.encode(), "bf-0042", "boern-familie", "bf-syd", lifetime=4)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(locale="da-DK")
        page.goto(f"http://127.0.0.1:{server.port}/#token={token}")
        expect(page.locator("body")).to_have_attribute("data-live", "on")
        expect(page.get_by_text("Din adgang er udløbet. Log ind igen.")).to_be_visible(
            timeout=15_000)
        expect(page.get_by_role("button", name="Log ind")).to_be_visible()
        browser.close()
