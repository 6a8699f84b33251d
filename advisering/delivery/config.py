"""The delivery channels file (``ADVISERING_CHANNELS_FILE``, e.g. ``channels.yaml``).

Operators route notifications to webhooks and e-mail digests per department or
unit. The schema is strict (unknown fields are errors) because a typo in a
routing file silently sends a caseworker's notifications nowhere; every error
names the file and the field path.
"""

from __future__ import annotations

import ipaddress
import re
import string
from pathlib import Path

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from advisering.engine.notification import Recipient
from advisering.yamlfiles import YamlFileError, problems_from_validation, read_yaml

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
ADDRESS_RE = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")
LOOPBACK_HOSTS = {"localhost"}
MIN_WEBHOOK_SECRET_BYTES = 32


def is_loopback(host: str) -> bool:
    """True for this machine: ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_HOSTS


def _placeholders(template: str, allowed: frozenset[str]) -> str:
    """Check an address template: only ``{name}`` of the allowed names, no format tricks."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed placeholder: {exc}") from exc
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in allowed or spec or conversion:
            names = ", ".join(f"{{{a}}}" for a in sorted(allowed))
            raise ValueError(f"placeholder {{{field}}} is not allowed here; use only {names}")
    sample = template.format(**{name: "x" for name in allowed})
    if not ADDRESS_RE.match(sample):
        raise ValueError("does not form an e-mail address such as {caseworker}@kommune.dk")
    return template


def render_address(template: str, recipient: Recipient) -> str | None:
    """The address for a recipient, or None when a placeholder has no usable value."""
    values = {"caseworker": recipient.caseworker, "unit": recipient.unit}
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if any(not values[f] for f in fields):
        return None
    address = template.format(**values)
    return address if ADDRESS_RE.match(address) else None


class Match(BaseModel):
    """Which recipients a channel serves: a department, a unit, or a unit of a department."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    department: str | None = Field(default=None, min_length=1)
    unit: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something(self) -> Match:
        if self.department is None and self.unit is None:
            raise ValueError("give a department, a unit or both")
        return self

    def matches(self, recipient: Recipient) -> bool:
        """True when the recipient is in the department and the unit this match names."""
        if self.department is not None and recipient.department != self.department:
            return False
        return self.unit is None or recipient.unit == self.unit


class WebhookConfig(BaseModel):
    """An HTTP endpoint of a case system that takes signed notification POSTs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl
    secret: SecretStr
    max_attempts: int = Field(default=6, ge=1, le=50)
    initial_backoff: float = Field(default=1.0, gt=0)
    max_backoff: float = Field(default=60.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)
    max_pending: int = Field(default=1000, ge=1)
    include_citizen: bool = False

    @field_validator("url")
    @classmethod
    def _https_unless_loopback(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        # Notifications are personal data: plain HTTP only to this machine.
        if url.scheme == "https":
            return url
        if not is_loopback(url.host or ""):
            raise ValueError("must be https (plain http is only allowed to localhost)")
        return url

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, secret: SecretStr) -> SecretStr:
        # An HMAC key an attacker could guess lets them forge notifications to a case system.
        size = len(secret.get_secret_value().encode())
        if size < MIN_WEBHOOK_SECRET_BYTES:
            raise ValueError(f"is {size} bytes; it must be at least {MIN_WEBHOOK_SECRET_BYTES} "
                             "bytes (for example: openssl rand -hex 32)")
        return secret

    @model_validator(mode="after")
    def _backoff_order(self) -> WebhookConfig:
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        return self


class EmailConfig(BaseModel):
    """An SMTP relay and the addresses of the digest e-mails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_host: str = Field(min_length=1)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    sender: str
    address: str
    unit_address: str | None = None
    interval: float = Field(default=900.0, gt=0)
    starttls: bool = False
    smtps: bool = False
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, le=50)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not ADDRESS_RE.match(value):
            raise ValueError("must be an e-mail address such as advis@kommune.dk")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _placeholders(value, frozenset({"caseworker", "unit"}))

    @field_validator("unit_address")
    @classmethod
    def _unit_address(cls, value: str | None) -> str | None:
        return None if value is None else _placeholders(value, frozenset({"unit"}))

    @model_validator(mode="after")
    def _credentials(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @model_validator(mode="after")
    def _tls(self) -> EmailConfig:
        # Digests are personal data, and a password in clear text is anyone's on the path.
        if self.starttls and self.smtps:
            raise ValueError("choose one of starttls (usually port 587) and smtps (port 465)")
        if self.starttls or self.smtps:
            return self
        if self.username is not None:
            raise ValueError("username and password are only sent over TLS: "
                             "set starttls: true (port 587) or smtps: true (port 465)")
        if not is_loopback(self.smtp_host):
            raise ValueError(f"smtp_host {self.smtp_host} is not this machine, so the relay "
                             "needs TLS: set starttls: true (port 587) or smtps: true "
                             "(port 465); plain SMTP only to localhost")
        return self

    @property
    def port(self) -> int:
        """``smtp_port``, else 465 with ``smtps`` and 25 without (STARTTLS included)."""
        if self.smtp_port is not None:
            return self.smtp_port
        return 465 if self.smtps else 25

    def address_for(self, recipient: Recipient) -> str | None:
        """The caseworker's address, or the unit's when the notification has no caseworker."""
        if not recipient.caseworker and self.unit_address is not None:
            return render_address(self.unit_address, recipient)
        return render_address(self.address, recipient)


class Channel(BaseModel):
    """One delivery channel: who it serves and how (exactly one of webhook, email)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    match: Match
    webhook: WebhookConfig | None = None
    email: EmailConfig | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Channel:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("a channel has exactly one of webhook or email")
        return self

    @property
    def specificity(self) -> int:
        """2 for a unit rule, 1 for a department rule: the more specific rule wins."""
        return 2 if self.match.unit is not None else 1


class ChannelsConfig(BaseModel):
    """The channels file: a list of channels with unique names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[Channel, ...] = ()

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        seen: set[str] = set()
        for channel in channels:
            if channel.name in seen:
                raise ValueError(f"channel name {channel.name!r} is used twice")
            seen.add(channel.name)
        return channels

    def channels_for(self, recipient: Recipient) -> list[Channel]:
        """The channels of the most specific matching rules (unit over department).

        A unit has its own channels so that it can opt out of its department's
        (e.g. a unit that wants e-mail, not the department's case system); all
        channels at the winning level apply, so a unit may have both.
        """
        matching = [c for c in self.channels if c.match.matches(recipient)]
        if not matching:
            return []
        best = max(c.specificity for c in matching)
        return [c for c in matching if c.specificity == best]


def load_channels(path: Path) -> ChannelsConfig:
    """Read and validate the channels file; an empty file means no channels."""
    raw = read_yaml(path)
    try:
        return ChannelsConfig.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise YamlFileError(problems_from_validation(path, exc)) from exc
