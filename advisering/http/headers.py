"""Security headers on every response of `advisering serve`, and TLS when serve terminates it.

The headers are set in ``on_response_prepare``, which aiohttp runs for every
response it routed: handlers' answers, the page and its static files, the
live stream, 404 and 405, and the 500 of a handler that raised. The page
loads its script and style from files (``/static/``), so the policy allows
no inline script or style at all; nothing may frame the page
(clickjacking); browsers must not guess content types; links to case
systems carry no referrer (the inbox URL is nobody's business).

No version banner: aiohttp's default ``Server: Python/3.x aiohttp/3.x``
tells an attacker which advisories to try. Serve answers ``Server:
advisering``, also on the 400 aiohttp itself sends for a request it cannot
parse (that answer is made before routing, so it only gets the banner).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from aiohttp import web, web_response

SERVER_BANNER = "advisering"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Server": SERVER_BANNER,
}
# Only over TLS (browsers ignore it over plain http): a year, as browsers' preload lists ask.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def add_security_headers(app: web.Application, *, tls: bool) -> None:
    """Set the security headers on every response ``app`` prepares (HSTS too with ``tls``)."""
    headers = dict(SECURITY_HEADERS)
    if tls:
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    # aiohttp fills ``Server`` only when a response has none; its unrouted 400s too.
    setattr(web_response, "SERVER_SOFTWARE", SERVER_BANNER)  # noqa: B010 - not re-exported

    async def secure(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(headers)

    app.on_response_prepare.append(secure)


def server_ssl_context(cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext | None:
    """TLS 1.2 or newer with the operator's certificate chain and key; None without them.

    A missing or unreadable file, or a key that does not match the
    certificate, is a ``ServeTlsError`` naming both files, before serve listens.
    """
    if cert_file is None or key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # An empty passphrase: an encrypted key fails here instead of prompting on a terminal.
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file), password="")
    except (OSError, ssl.SSLError) as exc:
        raise ServeTlsError(
            f"cannot use ADVISERING_SERVE_TLS_CERT_FILE={cert_file} with "
            f"ADVISERING_SERVE_TLS_KEY_FILE={key_file}: {exc.strerror or exc} (both must be "
            "readable PEM files, the key the certificate's, without a passphrase)") from exc
    return context


class ServeTlsError(RuntimeError):
    """Serve was given a certificate and key it cannot use."""
