"""Resolve secret references into values held in memory only, and keep them fresh.

A value is read once and cached in this process; it is read again when its lease (or the
Vault login's TTL, or `[secrets] refresh_seconds`) runs out, and after a SIGHUP. A value
is never written anywhere: not to a file, a log line, an audit record or a child's argv.
Every value resolved is also masked in log records (`install_log_redaction`).

One resolver per process, made at start from `[secrets]` (`configure`); code that needs a
secret calls `resolve()` once at start (fail fast, exit 3) or keeps a `SecretHandle` and
calls `.get()` on each use (sees rotations).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from defiagent.secrets.errors import SecretUnavailable
from defiagent.secrets.reference import SecretRef, parse_reference
from defiagent.secrets.registry import build_sources
from defiagent.secrets.settings import SecretsConfig
from defiagent.secrets.source import SecretSource

log = logging.getLogger(__name__)

MIN_MASKED_CHARS = 6  # shorter values would mask ordinary words in log lines


@dataclass
class _Cached:
    value: str
    expires: float | None  # monotonic
    stale: bool = False  # SIGHUP: read again on next use


class SecretResolver:
    def __init__(
        self,
        config: SecretsConfig | None = None,
        *,
        sources: dict[str, SecretSource] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SecretsConfig()
        self.sources = sources if sources is not None else build_sources(self.config)
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.RLock()
        self.reads: dict[str, int] = {}  # reference -> times read from its source

    def resolve(self, reference: str, *, what: str | None = None) -> str:
        """The value behind `reference`; SecretUnavailable (exit 3) naming it if there is none."""
        try:
            ref = parse_reference(reference)
        except ValueError as exc:
            from defiagent.errors import ConfigError

            raise ConfigError(f"{what or 'a secret'}: {exc}") from None
        key = str(ref)
        with self._lock:
            cached = self._cache.get(key)
            now = self.clock()
            valid = cached is not None and (cached.expires is None or now < cached.expires)
            if cached is not None and valid and not cached.stale:
                return cached.value
            try:
                value = self._read(ref, what)
            except SecretUnavailable as exc:
                if cached is not None and valid and cached.stale:
                    # A reload that fails keeps the value still valid, and says so.
                    log.warning("secret %s not re-read, previous value kept: %s", key, exc.message)
                    cached.stale = False
                    return cached.value
                raise
            return value

    def _read(self, ref: SecretRef, what: str | None) -> str:
        source = self.sources.get(ref.scheme)
        if source is None:
            raise SecretUnavailable(f"no source for {ref.scheme}: references in this process")
        try:
            _reading.active = True  # a client's debug log of the answer is withheld
            fetched = source.read(ref)
        except SecretUnavailable as exc:
            if what:
                raise SecretUnavailable(f"{what}: {exc.message}", remedy=exc.remedy) from None
            raise
        finally:
            _reading.active = False
        ttl = fetched.ttl_seconds
        if self.config.refresh_seconds is not None:
            ttl = min(ttl, self.config.refresh_seconds) if ttl else self.config.refresh_seconds
        key = str(ref)
        if fetched.cache:
            expires = None if not ttl else self.clock() + ttl
            self._cache[key] = _Cached(fetched.value, expires=expires)
        self.reads[key] = self.reads.get(key, 0) + 1
        _mask(fetched.value)
        return fetched.value

    def handle(self, reference: str, *, what: str | None = None) -> SecretHandle:
        """Resolve now (fail fast) and return a handle that re-resolves on each `get()`."""
        self.resolve(reference, what=what)
        return SecretHandle(self, reference, what)

    def reload(self) -> None:
        """Mark every cached value stale: each is read again on its next use."""
        with self._lock:
            for cached in self._cache.values():
                cached.stale = True
        log.info("secrets: reload requested, %d value(s) will be read again", len(self._cache))

    def values(self) -> list[str]:
        with self._lock:
            return [c.value for c in self._cache.values()]

    def install_sighup(self) -> Callable[[], None]:
        """SIGHUP -> reload(). Returns a function that restores the previous handler."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # signals can only be set from the main thread
        previous = signal.signal(signal.SIGHUP, lambda signum, frame: self.reload())

        def restore() -> None:
            signal.signal(signal.SIGHUP, previous)

        return restore


@dataclass(frozen=True)
class SecretHandle:
    """A secret used again and again (a header, a URL): `get()` gives the current value."""

    resolver: SecretResolver
    reference: str
    what: str | None = None

    def get(self) -> str:
        return self.resolver.resolve(self.reference, what=self.what)

    def __repr__(self) -> str:  # never the value
        return f"SecretHandle({self.reference})"


# --- the process's resolver --------------------------------------------------------------

_current = SecretResolver()


def configure(config: SecretsConfig | None) -> SecretResolver:
    """Make (or keep) the process's resolver for this `[secrets]` table."""
    global _current
    wanted = config or SecretsConfig()
    if _current.config != wanted:
        _current = SecretResolver(wanted)
    install_log_redaction()
    return _current


def current() -> SecretResolver:
    return _current


def resolve(reference: str, *, what: str | None = None) -> str:
    return _current.resolve(reference, what=what)


# --- masking values in log records ---------------------------------------------------------

_masked: set[str] = set()
_reading = threading.local()  # .active while this thread reads a secret from its source
_masked_lock = threading.Lock()
_factory_installed = False


def _mask(value: str) -> None:
    found = {value}
    if value.startswith(("http://", "https://")):
        # A log line may hold only part of a URL (urllib3 logs the path and query): its
        # API key or token in the path, query or userinfo is masked on its own too.
        from defiagent.chain.forwarder import credential_fragments

        found.update(credential_fragments(value, min_length=MIN_MASKED_CHARS))
    with _masked_lock:
        _masked.update(f for f in found if len(f) >= MIN_MASKED_CHARS)


def redact(text: str) -> str:
    """`text` with every resolved secret value replaced by [secret]."""
    for value in sorted(_masked, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "[secret]")
    return text


def install_log_redaction() -> None:
    """Every log record whose text holds a resolved value has it masked, in any logger."""
    global _factory_installed
    if _factory_installed:
        return
    base = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if getattr(_reading, "active", False) and record.levelno < logging.WARNING:
            # botocore logs whole response bodies at DEBUG, before the value is known to
            # be one: nothing a client logs below WARNING while reading a secret is kept.
            record.msg, record.args = "[withheld: logged while a secret was read]", ()
            return record
        if _masked:
            try:
                text = record.getMessage()
            except Exception:  # a malformed record is logging's own problem to report
                return record
            clean = redact(text)
            if clean != text:
                record.msg, record.args = clean, ()
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
