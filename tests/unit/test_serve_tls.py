"""`advisering serve` terminating TLS itself (ADVISERING_SERVE_TLS_CERT_FILE / _KEY_FILE)."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from advisering.http.headers import (
    SECURITY_HEADERS,
    STRICT_TRANSPORT_SECURITY,
    ServeTlsError,
    server_ssl_context,
)
from advisering.settings import Settings
from tests.unit.delivery_support import free_port
from tests.unit.tls_support import self_signed

ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE = 60.0


def serve_env(tmp_path: Path, port: int, cert: Path, key: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env.update(ADVISERING_BOOTSTRAP_SERVERS="127.0.0.1:1", ADVISERING_PSEUDONYM_KEY="k" * 32,
               ADVISERING_SOURCES_FILE=str(tmp_path / "sources.yaml"),
               ADVISERING_SERVE_PORT=str(port), ADVISERING_SERVE_TLS_CERT_FILE=str(cert),
               ADVISERING_SERVE_TLS_KEY_FILE=str(key), ADVISERING_LOG_LEVEL="WARNING")
    return env


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until serve listens (a failure to start is reported with its output)."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode()
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"serve did not listen on {port}")


@pytest.fixture(scope="module")
def tls_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """One `advisering serve` (ingest only, no broker needed) with a self-signed cert."""
    tmp_path = tmp_path_factory.mktemp("tls-serve")
    cert, key = self_signed(tmp_path)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "advisering.cli", "serve"],
                               env=serve_env(tmp_path, port, cert, key), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield port, cert
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_serve_answers_https_with_its_headers(tls_serve: tuple[int, Path]) -> None:
    """A client trusting the certificate gets /healthz over TLS 1.2+, with HSTS and the CSP."""
    port, cert = tls_serve
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context,
                                timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Strict-Transport-Security"] == STRICT_TRANSPORT_SECURITY
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers[name] == value
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_http_to_the_tls_port_fails(tls_serve: tuple[int, Path]) -> None:
    """Plain http to serve's TLS port gets no HTTP answer (the connection fails)."""
    port, _ = tls_serve
    with pytest.raises((http.client.HTTPException, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10)


def test_an_untrusted_certificate_is_refused_by_a_verifying_client(
    tls_serve: tuple[int, Path],
) -> None:
    """It really is TLS with this certificate: a client trusting only other CAs refuses it."""
    port, _ = tls_serve
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz",
                               context=ssl.create_default_context(), timeout=10)
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


def test_context_refuses_tls_below_1_2(tmp_path: Path) -> None:
    """Serve's TLS context has TLS 1.2 as its minimum version."""
    context = server_ssl_context(*self_signed(tmp_path))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_certificate_without_key_is_a_settings_error() -> None:
    """Only one of the two TLS settings is refused: both or neither."""
    with pytest.raises(ValidationError, match="go together"):
        Settings(serve_tls_cert_file=Path("serve.crt"))
    with pytest.raises(ValidationError, match="go together"):
        Settings(serve_tls_key_file=Path("serve.key"))


def test_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    """A key that is not the certificate's, or a missing file, is an error naming both files."""
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    with pytest.raises(ServeTlsError, match="ADVISERING_SERVE_TLS_CERT_FILE"):
        server_ssl_context(cert, other_key)
    with pytest.raises(ServeTlsError, match=r"two\.key"):
        server_ssl_context(tmp_path / "missing.crt", other_key)


def test_serve_with_a_wrong_key_exits_2_before_listening(tmp_path: Path) -> None:
    """`advisering serve` with a key that does not match exits 2 with the error, no traceback."""
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    result = subprocess.run([sys.executable, "-m", "advisering.cli", "serve"],
                            env=serve_env(tmp_path, free_port(), cert, other_key), cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "ADVISERING_SERVE_TLS_KEY_FILE" in result.stderr and "two.key" in result.stderr
    assert "Traceback" not in result.stderr
