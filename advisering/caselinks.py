"""Links from a notification to the recipient's own case (``ADVISERING_CASE_URLS``).

The page puts the link in an ``<a href>``, so both halves are attacker-shaped
input for a browser: the pattern is configuration (checked when the settings
are built: only ``https://host/...`` with ``{id}`` after the host, never
``http:``, ``javascript:``, ``data:`` or protocol-relative ``//host``), and the
case id comes from a source system's event (percent-encoded whole, so ``/``,
``?``, ``#``, ``%``, spaces or ``javascript:`` in an id stay inside its one
path segment or query value and cannot change the host, path or scheme).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

PLACEHOLDER = "{id}"
# A path segment of only "." or ".." (even percent-encoded: the URL standard
# decodes "%2e") would walk the link up the case system's paths.
_DOT_SEGMENTS = frozenset({".", ".."})


def check_pattern(source: str, pattern: str) -> str:
    """The pattern when it is an ``https`` URL with ``{id}`` after its host, else ValueError.

    The message names the entry (the source system), for the settings error.
    """
    where = f"case URL pattern for {source!r}"
    if not pattern.isascii() or any(c.isspace() or ord(c) < 32 for c in pattern):
        raise ValueError(f"{where} must be an ASCII URL without spaces or control characters")
    if PLACEHOLDER not in pattern:
        raise ValueError(f"{where} must contain {PLACEHOLDER} (the case id)")
    parts = urlsplit(pattern.replace(PLACEHOLDER, "x"))
    if parts.scheme.lower() != "https" or not pattern.lower().startswith("https://"):
        raise ValueError(f"{where} must start with https:// (got {parts.scheme or 'no'} "
                         "scheme; http:, javascript:, data: and //host are refused)")
    host = pattern[len("https://"):].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not parts.hostname or PLACEHOLDER in host or "@" in host or "\\" in pattern:
        raise ValueError(f"{where} must name a host of its own, with {PLACEHOLDER} after it "
                         "(in the path, query or fragment)")
    return pattern


def case_link(pattern: str, case_id: object) -> str | None:
    """The link for one case id, or None when the id cannot be a link (empty, "." or "..")."""
    text = str(case_id)
    if not text or text in _DOT_SEGMENTS:
        return None
    return pattern.replace(PLACEHOLDER, quote(text, safe=""))
