"""URLs as evalkit prints and stores them: never with the credentials a URL can carry."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters whose values are secrets however they are spelled (key=, api_key=, token=, sig=…).
_SECRET_PARAM = re.compile(r"(key|token|secret|pass|auth|sig|credential|session)", re.IGNORECASE)
REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """``url`` without the secrets it may hold: user and password (``https://user:pw@host``) and the
    values of query parameters that look like credentials. Anything unparseable is redacted whole."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{host}{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
