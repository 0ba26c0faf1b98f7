"""Keep credentials out of messages, logs and stored configs.

A server URL may carry a password (``https://user:key@host``) or a key in its query (``?api_key=...``), and
a server's error reply may echo the ``Authorization`` header or the key itself. ``redact_url`` masks the
first, ``redact_secrets`` the second (the secret values it is given, plus ``Bearer <token>``, ``key=value``
and ``user:password@`` patterns), and ``redact_config`` a stored config's URLs and secret-named values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
#: names (query keys, config keys, ``name=value`` in text) whose values are credentials: they end in one of these
_NAMES = r"(?:key|token|secret|password|passwd|pwd|sig|signature|credentials?|auth|authorization|session|cookie)"
_SENSITIVE = re.compile(_NAMES + r"$", re.IGNORECASE)
#: secrets shorter than this are not replaced in free text (they would garble it); URLs mask them anyway
MIN_SECRET = 4
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_PAIR = re.compile(r"(?i)(\b[\w-]*" + _NAMES + r"\b[\"']?\s*[=:]\s*[\"']?)(?!(?:bearer|basic)\b)([^\s&\"',;}]+)")
_USERINFO = re.compile(r"(://)[^/\s@]+@")


def _sensitive(name: str) -> bool:
    return bool(_SENSITIVE.search(unquote(name).strip()))  # api_key_env (a variable's name) does not end in key


def _mask_pairs(text: str) -> str:
    """``a=1&api_key=s`` -> ``a=1&api_key=***`` (the raw encoding of other pairs kept)."""
    out = []
    for piece in text.split("&"):
        name, sep, value = piece.partition("=")
        out.append(f"{name}={MASK}" if sep and value and _sensitive(name) else piece)
    return "&".join(out)


def _parts(url: str):
    """``urlsplit`` or None for text that is not a URL (never raises)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        return None
    return parts if parts.scheme and parts.netloc else None


def redact_url(url: str | None) -> str | None:
    """The URL with its userinfo and secret query values masked: ``https://u:***@host/v1?api_key=***``.

    A bare ``key@host`` is masked whole (it may be a token). Text that is not a URL goes through
    ``redact_secrets`` instead, so this never returns a credential it was given.
    """
    if url is None:
        return None
    url = str(url)
    parts = _parts(url)
    if parts is None:
        if "://" not in url and _parts("http://" + url) is not None:  # 'user:key@host/v1' without a scheme
            return str(redact_url("http://" + url))[len("http://"):]
        return redact_secrets(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon and user else f"{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, _mask_pairs(parts.query), _mask_pairs(parts.fragment)))


def url_secrets(url: str | None) -> list[str]:
    """The credential values inside a URL (userinfo and secret query values), raw and percent-decoded."""
    url = str(url or "")
    parts = _parts(url) or (_parts("http://" + url) if url and "://" not in url else None)
    if parts is None:
        return []
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        found += [password] if colon and user else [userinfo, user, password]
    for text in (parts.query, parts.fragment):
        for piece in text.split("&"):
            name, sep, value = piece.partition("=")
            if sep and value and _sensitive(name):
                found.append(value)
    return [s for s in dict.fromkeys([*found, *(unquote(s) for s in found)]) if s]


def redact_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret value (at least ``MIN_SECRET`` characters) and every
    ``Bearer <token>``, ``api_key=<value>`` and ``user:password@`` pattern replaced by ``***``."""
    text = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _PAIR.sub(lambda m: m.group(1) + MASK, text)
    return _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def redact_config(values: Any) -> Any:
    """A copy of a config (nested dicts and lists) with URLs redacted and secret-named string values masked:
    what may be written to disk or printed. Values without credentials are returned unchanged."""
    if isinstance(values, dict):
        out = {}
        for key, value in values.items():
            if isinstance(value, str) and value and _sensitive(str(key)):
                out[key] = MASK
            else:
                out[key] = redact_config(value)
        return out
    if isinstance(values, (list, tuple)):
        return type(values)(redact_config(v) for v in values)
    if isinstance(values, str) and "://" in values:
        return redact_url(values)
    return values
