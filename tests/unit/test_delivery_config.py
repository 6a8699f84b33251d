"""The channels file: valid files load, bad ones are refused by file and field, routing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from advisering.delivery.config import ChannelsConfig, load_channels
from advisering.engine.notification import Recipient
from advisering.yamlfiles import YamlFileError

VALID = """\
channels:
  - name: boern-familie-fagsystem
    match: {department: boern-familie}
    webhook:
      url: https://fagsystem.kommune.example/advis
      secret: "0123456789abcdef-0123456789abcdef-secret"
      max_attempts: 6
      initial_backoff: 1.0
      max_backoff: 60.0
      timeout: 10.0
  - name: hjemmepleje-mail
    match: {unit: hjemmepleje-vest}
    email:
      smtp_host: 127.0.0.1
      smtp_port: 25
      sender: advis@kommune.example
      address: "{caseworker}@kommune.example"
      unit_address: "{unit}@kommune.example"
      interval: 900
      starttls: false
  - name: bf-syd-mail
    match: {department: boern-familie, unit: bf-syd}
    email:
      smtp_host: smtp.kommune.example
      sender: advis@kommune.example
      address: "{caseworker}@kommune.example"
      starttls: true
      username: advis
      password: hemmeligt
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _problem(tmp_path: Path, text: str) -> tuple[Path, YamlFileError]:
    path = _write(tmp_path, text)
    with pytest.raises(YamlFileError) as caught:
        load_channels(path)
    return path, caught.value


def test_valid_file_loads(tmp_path: Path) -> None:
    """The example file loads with its values and defaults."""
    config = load_channels(_write(tmp_path, VALID))
    names = [c.name for c in config.channels]
    assert names == ["boern-familie-fagsystem", "hjemmepleje-mail", "bf-syd-mail"]
    webhook = config.channels[0].webhook
    assert webhook is not None
    assert str(webhook.url) == "https://fagsystem.kommune.example/advis"
    assert webhook.max_attempts == 6
    mail = config.channels[1].email
    assert mail is not None
    assert mail.interval == 900
    assert mail.address_for(Recipient("hp-7", "hjemmepleje-vest", "aeldre")) == (
        "hp-7@kommune.example")
    assert mail.address_for(Recipient(None, "hjemmepleje-vest", "aeldre")) == (
        "hjemmepleje-vest@kommune.example")
    assert config.channels[2].email is not None
    assert config.channels[2].email.port == 25


def test_empty_file_means_no_channels(tmp_path: Path) -> None:
    """An empty channels file is valid and routes nothing."""
    config = load_channels(_write(tmp_path, ""))
    assert config.channels == ()


def test_unknown_field_names_file_and_path(tmp_path: Path) -> None:
    """A misspelt field is refused with the file and the full field path."""
    path, error = _problem(tmp_path, VALID.replace("max_attempts: 6", "max_attempt: 6"))
    problem = error.problems[0]
    assert problem.file == path
    assert problem.path == "channels.0.webhook.max_attempt"
    assert "unknown field" in str(error)
    assert "channels.yaml" in str(error)


def test_bad_url_is_refused(tmp_path: Path) -> None:
    """A URL that is not http(s) is refused naming channels.N.webhook.url."""
    path, error = _problem(tmp_path, VALID.replace(
        "https://fagsystem.kommune.example/advis", "ftp://fagsystem.kommune.example/advis"))
    assert error.problems[0].path == "channels.0.webhook.url"
    assert str(path) in str(error)


def test_plain_http_only_to_loopback(tmp_path: Path) -> None:
    """Plain http to another host is refused; to 127.0.0.1 it is allowed."""
    _, error = _problem(tmp_path, VALID.replace("https://fagsystem", "http://fagsystem"))
    assert error.problems[0].path == "channels.0.webhook.url"
    assert "https" in error.problems[0].message
    config = load_channels(_write(tmp_path, VALID.replace(
        "https://fagsystem.kommune.example/advis", "http://127.0.0.1:8081/advis")))
    assert config.channels[0].webhook is not None


def test_bad_placeholder_in_address_is_refused(tmp_path: Path) -> None:
    """An address placeholder other than {caseworker} and {unit} is refused by field path."""
    _, error = _problem(tmp_path, VALID.replace(
        '"{caseworker}@kommune.example"\n      unit_address',
        '"{citizen}@kommune.example"\n      unit_address'))
    assert error.problems[0].path == "channels.1.email.address"
    assert "{citizen}" in error.problems[0].message


@pytest.mark.parametrize("address", [
    "{caseworker.__class__}@kommune.example", "{caseworker!r}@kommune.example",
    "{caseworker:>10}@kommune.example", "{caseworker@kommune.example", "{caseworker}",
])
def test_format_tricks_in_address_are_refused(tmp_path: Path, address: str) -> None:
    """Attribute access, conversions, format specs and non-addresses are refused."""
    _, error = _problem(tmp_path, VALID.replace(
        '"{caseworker}@kommune.example"\n      unit_address', f'"{address}"\n      unit_address'))
    assert error.problems[0].path == "channels.1.email.address"


SECRET_IN_VALID = '"0123456789abcdef-0123456789abcdef-secret"'


@pytest.mark.parametrize("secret", ['"short"', '"' + "s" * 31 + '"', '"' + "æ" * 15 + '"'])
def test_webhook_secret_under_32_bytes_is_refused(tmp_path: Path, secret: str) -> None:
    """A webhook secret under 32 bytes (counted in UTF-8) is refused, saying how long it must be."""
    path, error = _problem(tmp_path, VALID.replace(SECRET_IN_VALID, secret))
    assert error.problems[0].path == "channels.0.webhook.secret"
    assert "at least 32 bytes" in error.problems[0].message
    assert str(path) in str(error)


def test_webhook_secret_of_32_bytes_loads(tmp_path: Path) -> None:
    """A secret of exactly 32 bytes (16 two-byte letters too) is long enough."""
    for secret in ('"' + "s" * 32 + '"', '"' + "æ" * 16 + '"'):
        config = load_channels(_write(tmp_path, VALID.replace(SECRET_IN_VALID, secret)))
        assert config.channels[0].webhook is not None


def test_missing_kind_is_refused(tmp_path: Path) -> None:
    """A channel with neither webhook nor email is refused."""
    _, error = _problem(tmp_path, """\
channels:
  - name: nothing
    match: {unit: x}
""")
    assert error.problems[0].path == "channels.0"
    assert "exactly one of webhook or email" in error.problems[0].message


def test_duplicate_channel_names_are_refused(tmp_path: Path) -> None:
    """Two channels with one name are refused."""
    _, error = _problem(tmp_path, VALID.replace("name: bf-syd-mail", "name: hjemmepleje-mail"))
    assert error.problems[0].path == "channels"
    assert "used twice" in error.problems[0].message


def test_channels_for_prefers_unit_over_department(tmp_path: Path) -> None:
    """A recipient whose unit has a channel gets that one, not its department's."""
    config = load_channels(_write(tmp_path, VALID))
    bf_syd = Recipient("bf-0042", "bf-syd", "boern-familie")
    bf_nord = Recipient("bf-0043", "bf-nord", "boern-familie")
    elder = Recipient(None, "hjemmepleje-vest", "aeldre")
    nobody = Recipient("jc-1", "jobcenter-nord", "jobcenter")
    assert [c.name for c in config.channels_for(bf_syd)] == ["bf-syd-mail"]
    assert [c.name for c in config.channels_for(bf_nord)] == ["boern-familie-fagsystem"]
    assert [c.name for c in config.channels_for(elder)] == ["hjemmepleje-mail"]
    assert config.channels_for(nobody) == []


def test_unit_with_two_channels_gets_both() -> None:
    """All channels at the winning level apply: a unit may have a webhook and e-mail."""
    config = ChannelsConfig.model_validate({"channels": [
        {"name": "a", "match": {"unit": "u"},
         "webhook": {"url": "https://a.example/x", "secret": "s" * 32}},
        {"name": "b", "match": {"unit": "u"},
         "email": {"smtp_host": "h", "starttls": True, "sender": "a@b.dk",
                   "address": "{caseworker}@b.dk"}},
        {"name": "c", "match": {"department": "d"},
         "webhook": {"url": "https://c.example/x", "secret": "s" * 32}},
    ]})
    recipient = Recipient("x", "u", "d")
    assert [c.name for c in config.channels_for(recipient)] == ["a", "b"]


MAIL = {"sender": "a@b.dk", "address": "{caseworker}@b.dk"}


def _email_problem(**email: object) -> str:
    with pytest.raises(ValidationError) as caught:
        ChannelsConfig.model_validate({"channels": [
            {"name": "m", "match": {"unit": "u"}, "email": {**MAIL, **email}}]})
    error = caught.value.errors()[0]
    assert error["loc"][:3] == ("channels", 0, "email")
    return str(error["msg"])


@pytest.mark.parametrize("host", ["smtp.kommune.example", "10.0.0.25", "127.0.0.1.nip.io", "::2"])
def test_plain_smtp_to_another_host_is_refused(host: str) -> None:
    """A relay that is not this machine needs STARTTLS or SMTPS; the error says so."""
    message = _email_problem(smtp_host=host)
    assert "needs TLS" in message and "starttls" in message and "smtps" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_plain_smtp_to_loopback_is_allowed(host: str) -> None:
    """A relay on this machine (a local MTA) may take plain SMTP without credentials."""
    config = ChannelsConfig.model_validate({"channels": [
        {"name": "m", "match": {"unit": "u"}, "email": {**MAIL, "smtp_host": host}}]})
    assert config.channels[0].email is not None
    assert config.channels[0].email.port == 25


def test_credentials_without_tls_are_refused_even_on_loopback() -> None:
    """A username and password are never sent in clear text, not even to localhost."""
    message = _email_problem(smtp_host="127.0.0.1", username="advis", password="hemmeligt")
    assert "only sent over TLS" in message


@pytest.mark.parametrize(("tls", "port"), [({"starttls": True}, 25), ({"smtps": True}, 465)])
def test_starttls_or_smtps_with_credentials_loads(tls: dict[str, bool], port: int) -> None:
    """STARTTLS or SMTPS to a remote relay, with credentials, loads; SMTPS defaults to 465."""
    config = ChannelsConfig.model_validate({"channels": [
        {"name": "m", "match": {"unit": "u"}, "email": {
            **MAIL, **tls, "smtp_host": "smtp.kommune.example", "username": "advis",
            "password": "hemmeligt"}}]})
    email = config.channels[0].email
    assert email is not None and email.port == port


def test_starttls_and_smtps_together_are_refused() -> None:
    """STARTTLS and SMTPS at once is a contradiction, refused."""
    assert "choose one" in _email_problem(smtp_host="smtp.kommune.example", starttls=True,
                                          smtps=True)
