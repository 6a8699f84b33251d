"""The channels file: valid files load, bad ones are refused by file and field, routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisering.delivery.config import ChannelsConfig, load_channels
from advisering.engine.notification import Recipient
from advisering.yamlfiles import YamlFileError

VALID = """\
channels:
  - name: boern-familie-fagsystem
    match: {department: boern-familie}
    webhook:
      url: https://fagsystem.kommune.example/advis
      secret: "0123456789abcdef-secret"
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
    assert config.channels[2].email.smtp_port == 25


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


def test_short_secret_and_missing_kind_are_refused(tmp_path: Path) -> None:
    """A secret under 16 characters, and a channel with neither webhook nor email, are refused."""
    _, error = _problem(tmp_path, VALID.replace('"0123456789abcdef-secret"', '"short"'))
    assert error.problems[0].path == "channels.0.webhook.secret"
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
         "webhook": {"url": "https://a.example/x", "secret": "s" * 16}},
        {"name": "b", "match": {"unit": "u"},
         "email": {"smtp_host": "h", "sender": "a@b.dk", "address": "{caseworker}@b.dk"}},
        {"name": "c", "match": {"department": "d"},
         "webhook": {"url": "https://c.example/x", "secret": "s" * 16}},
    ]})
    recipient = Recipient("x", "u", "d")
    assert [c.name for c in config.channels_for(recipient)] == ["a", "b"]
