"""The shared store: one PostgreSQL database that every machine of a team reads and writes, for the paid
answers (response cache), the claims that make a request or a batch paid for once, the batch ledger and the
run history.

Selected by one setting: ``store = "postgresql://…"`` under ``[evalkit]`` in evalkit.toml, or the
``EVALKIT_STORE`` environment variable. Without it evalkit keeps everything embedded (diskcache and files
under ``.evalkit/`` and ``reports/``) and needs no server. The schema is in docs/store.md.

The URL may carry a password: it is a secret (``SecretStr`` in the settings) and is only ever shown
redacted (:func:`evalkit._urls.redact_url`), in messages, records and reports alike.
"""

from __future__ import annotations

import atexit

from evalkit._urls import redact_url
from evalkit.config import Settings
from evalkit.errors import ConfigError
from evalkit.store.postgres import DEFAULT_CLAIM_TTL_S, SCHEMA_VERSION, PostgresStore, StoreCheck

__all__ = ["DEFAULT_CLAIM_TTL_S", "SCHEMA_VERSION", "PostgresStore", "StoreCheck", "open_store",
           "store_url", "describe_store"]

SCHEMES = ("postgresql", "postgres")
_OPEN: dict[str, PostgresStore] = {}


def store_url(settings: Settings) -> str | None:
    """The configured store's URL (a secret: never print it), or None for the embedded default."""
    if settings.store is None:
        return None
    url = settings.store.get_secret_value().strip()
    if not url or url == "embedded":
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"store = {redact_url(url)!r} is not a PostgreSQL URL",
                          hint='write store = "postgresql://USER@HOST:5432/DATABASE" under [evalkit] in '
                               'evalkit.toml (or set EVALKIT_STORE), with the password in PGPASSWORD or '
                               '~/.pgpass; leave it out for the embedded default')
    return url


def open_store(settings: Settings) -> PostgresStore | None:
    """The shared store of these settings (one connection per process and URL), or None (embedded)."""
    url = store_url(settings)
    if url is None:
        return None
    store = _OPEN.get(url)
    if store is None or store.closed:
        store = PostgresStore(url)
        _OPEN[url] = store
        atexit.register(store.close)  # releases this process's claims at once (else they expire)
    return store


def describe_store(settings: Settings) -> str:
    """Where paid answers and run history live, for messages and records (credentials redacted)."""
    url = store_url(settings)
    return f"shared store {redact_url(url)}" if url else f"embedded ({settings.cache_dir})"
