"""Secrets inside URLs, masked for display (the console's settings page).

A URL setting can carry credentials in two places: the userinfo password
(``postgresql://user:PASSWORD@db/x``, ``turn:user:PASSWORD@host:3478``) and query (or fragment)
parameters (``http://gpu:8080/v1?api_key=KEY``). Both are replaced with ``***``. When in doubt
the mask covers more, never less: this is for display only.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

MASK = "***"
SECRET_PARAM = re.compile(r"key|token|secret|password|pass|pwd|auth|sig|credential", re.I)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:(?://)?)")


def _mask_params(text: str) -> str:
    """``a=1&api_key=x`` -> ``a=1&api_key=***`` (``&`` or ``;`` separated)."""
    parts = re.split(r"([&;])", text)
    for i in range(0, len(parts), 2):
        name, eq, _ = parts[i].partition("=")
        if eq and SECRET_PARAM.search(unquote_plus(name)):
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def mask_url(value: str) -> str:
    """``value`` with any userinfo password and secret-looking parameter values as ``***``.

    A value that does not start with a scheme (``name:``) is not a URL and comes back as is.
    """
    m = _SCHEME.match(value)
    if m is None:
        return value
    prefix, rest = m.group("scheme"), value[m.end() :]
    # userinfo: up to the last "@" before the query or fragment; the password follows its ":"
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:cut], rest[cut:]
    userinfo, at, hostpart = head.rpartition("@")
    if at and ":" in userinfo:
        head = f"{userinfo.partition(':')[0]}:{MASK}@{hostpart}"
    query, hash_, fragment = tail.partition("#")
    return prefix + head + _mask_params(query) + hash_ + _mask_params(fragment)
