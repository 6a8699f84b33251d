"""E-mail digests over TLS: SMTPS and STARTTLS relays with credentials (real aiosmtpd servers)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult

from advisering.delivery.config import EmailConfig
from advisering.delivery.email import EmailDigest
from tests.unit.delivery_support import DeadLetters, notification, smtp_server, wait_until
from tests.unit.tls_support import self_signed

LOGINS: list[tuple[str, bool]] = []


def authenticator(server: Any, _session: Any, _envelope: Any, _mechanism: str,
                  auth_data: Any) -> AuthResult:
    """Accept advis/hemmeligt, and remember whether the connection was encrypted when it came."""
    encrypted = server.transport.get_extra_info("ssl_object") is not None
    LOGINS.append((auth_data.login.decode(), encrypted))
    return AuthResult(success=auth_data.login == b"advis" and auth_data.password == b"hemmeligt")


def server_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """The relay's TLS context; the client (OpenSSL's default paths) trusts its certificate."""
    cert, key = self_signed(tmp_path, "relay")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


def config(port: int, **tls: bool) -> EmailConfig:
    return EmailConfig.model_validate({
        "smtp_host": "localhost", "smtp_port": port, "sender": "advis@kommune.example",
        "address": "{caseworker}@kommune.example", "interval": 900, "timeout": 5.0,
        "username": "advis", "password": "hemmeligt", "max_attempts": 1, **tls})


@pytest.mark.parametrize("tls", ["smtps", "starttls"])
async def test_digest_goes_over_tls_with_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls: str,
) -> None:
    """With smtps (TLS from the start) or starttls, the login and the digest are encrypted."""
    context = server_context(tmp_path, monkeypatch)
    options: dict[str, Any] = (
        # aiosmtpd offers AUTH over implicit TLS only when told TLS is not required (it
        # looks for STARTTLS); the authenticator checks the session was encrypted anyway.
        {"ssl_context": context, "auth_require_tls": False} if tls == "smtps"
        else {"tls_context": context, "require_starttls": True})
    LOGINS.clear()
    with smtp_server(authenticator=authenticator, **options) as (inbox, port):
        sink = DeadLetters()
        digest = EmailDigest("mail", config(port, **{tls: True}), sink)
        await digest.start()
        await digest.deliver(notification("n-1"))
        await digest.close()
        await wait_until(lambda: inbox.count() == 1)
    assert LOGINS == [("advis", True)]
    assert inbox.received[0].rcpt_tos == ["bf-0042@kommune.example"]
    assert sink.records == []
