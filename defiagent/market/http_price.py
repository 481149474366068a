"""An off-chain HTTP price API as one more reference: never trusted on its own.

`requests` with separate connect and read timeouts, no redirects, a cap on the body size,
a URL template per pair, and dotted JSON paths to the price and to its timestamp. Any
error, timeout, redirect, oversized or non-JSON body, missing field or non-positive price
means no quote (the sanity check then fails closed if sources are short). The price check
never lets an HTTP answer count unless an on-chain reference (TWAP or Chainlink) agrees
too (`market/sanity.py`).

An API key is read from the environment variable named in the config and sent in a
header; it is never put in a URL, a reason or a log line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import urllib3
from pydantic import BaseModel, ConfigDict, Field, field_validator

from defiagent.market.models import PoolState, SourceCheck, TokenInfo
from defiagent.market.reader import ChainReader
from defiagent.net.tls import verify as tls_verify
from defiagent.types import Address

log = logging.getLogger(__name__)

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_KEY_HINTS = ("apikey", "api_key", "api-key", "key=", "token=", "secret")


class HttpPricePair(BaseModel):
    """Where one pair's price is: `url` may use {base}, {quote}, {base_symbol}, {quote_symbol}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: Address
    quote: Address
    url: str
    price_path: str = Field(min_length=1, description='dotted JSON path, e.g. "data.price"')
    timestamp_path: str = Field(min_length=1, description="dotted JSON path to the quote time")
    timestamp_unit: Literal["s", "ms"] = "s"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.replace("{", "").replace("}", ""))
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
        ):
            raise ValueError("must be an https URL (plain http only to localhost)")
        if any(h in value.lower() for h in _KEY_HINTS):
            raise ValueError(
                "must not carry an API key: name its environment variable in api_key_env"
            )
        return value


class HttpPriceConfig(BaseModel):
    """`[market.http]`: the price API's pairs, timeouts, body cap and API key variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pairs: list[HttpPricePair] = Field(default_factory=list)
    connect_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    read_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    max_body_bytes: int = Field(default=65_536, gt=0, le=10_000_000)
    max_age_seconds: int | None = Field(
        default=None, gt=0, description="default market.max_reference_age_seconds"
    )
    max_clock_skew_seconds: int = Field(default=30, ge=0)
    api_key_env: str | None = Field(
        default=None, description="name of the environment variable holding the API key"
    )
    api_key_header: str = "X-API-Key"
    api_key: str | None = Field(
        default=None,
        description="a secret reference to the API key (docs/secrets.md); wins over api_key_env",
    )

    @field_validator("api_key")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        from defiagent.secrets.reference import check_reference

        return None if value is None else check_reference(value)


class _NoQuote(Exception):
    pass


def json_path(data: Any, path: str) -> Any:
    """`a.b.0.c`: object keys and list indexes; _NoQuote if any step is missing."""
    for step in path.split("."):
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif (
            isinstance(data, list)
            and step.lstrip("-").isdigit()
            and -len(data) <= int(step) < len(data)
        ):
            data = data[int(step)]
        else:
            raise _NoQuote(f"no {path!r} in the answer")
    return data


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _NoQuote(f"the {what} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise _NoQuote(f"the {what} {value!r:.40} is not a number") from None
    if not math.isfinite(number):
        raise _NoQuote(f"the {what} is not finite")
    return number


def _timestamp(value: Any, unit: str) -> int:
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _NoQuote(f"the timestamp {value!r:.40} is not a time") from None
        if parsed.tzinfo is None:
            raise _NoQuote("the timestamp has no time zone")
        return int(parsed.timestamp())
    seconds = _number(value, "timestamp")
    return int(seconds / 1000 if unit == "ms" else seconds)


class HttpPriceReference:
    """Fetches each configured pair's price when the observer asks for it."""

    kind = "http"
    onchain = False

    def __init__(
        self,
        config: HttpPriceConfig,
        *,
        max_age_seconds: int = 600,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.max_age = config.max_age_seconds or max_age_seconds
        self.clock = clock
        self.session = session or requests.Session()
        self.session.trust_env = False  # no proxies or .netrc credentials from the environment
        self.session.verify = tls_verify()  # never off; [tls] ca_bundle may add a CA
        self._api_key = None
        if config.api_key:  # resolved now: a missing key stops the start (exit 3)
            from defiagent import secrets

            self._api_key = secrets.current().handle(
                config.api_key, what=f"market.http.api_key ({config.api_key})"
            )
        hosts = sorted({urlsplit(p.url).hostname or "?" for p in config.pairs})
        self.name = "http:" + ",".join(hosts)

    def observe(self, reader: ChainReader, pool: PoolState, now: int) -> None:
        return None  # fetched in read(), when the pair's tokens are known

    def _pair(self, base: TokenInfo, quote: TokenInfo) -> tuple[HttpPricePair, bool] | None:
        for pair in self.config.pairs:
            if (pair.base, pair.quote) == (base.address, quote.address):
                return pair, False
            if (pair.base, pair.quote) == (quote.address, base.address):
                return pair, True
        return None

    def fetch(self, pair: HttpPricePair, base: TokenInfo, quote: TokenInfo) -> tuple[float, int]:
        """(price, unix timestamp) of the pair as the API states them; _NoQuote otherwise."""
        url = pair.url.format(
            base=pair.base,
            quote=pair.quote,
            base_symbol=base.symbol if base.address == pair.base else quote.symbol,
            quote_symbol=quote.symbol if quote.address == pair.quote else base.symbol,
        )
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            try:
                headers[self.config.api_key_header] = self._api_key.get()
            except Exception as exc:  # a rotation that failed: no quote, never a crash
                raise _NoQuote(f"the API key {self.config.api_key} is unavailable") from exc
        elif self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if not key:
                raise _NoQuote(f"the environment variable {self.config.api_key_env} is not set")
            headers[self.config.api_key_header] = key
        limit = self.config.max_body_bytes
        budget = self.config.connect_timeout_seconds + self.config.read_timeout_seconds
        deadline = time.monotonic() + budget
        try:
            with self.session.get(
                url,
                headers=headers,
                timeout=(self.config.connect_timeout_seconds, self.config.read_timeout_seconds),
                allow_redirects=False,
                stream=True,
            ) as resp:
                if resp.status_code != 200:
                    raise _NoQuote(f"HTTP status {resp.status_code}")
                body = b""
                while chunk := resp.raw.read1(8192, decode_content=True):  # one socket read
                    body += chunk
                    if len(body) > limit:
                        raise _NoQuote(f"the body exceeds {limit} bytes")
                    if time.monotonic() > deadline:  # a server trickling bytes
                        raise _NoQuote(f"the answer took longer than {budget:.1f}s")
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            raise _NoQuote(
                f"no answer within {self.config.connect_timeout_seconds}s connect / "
                f"{self.config.read_timeout_seconds}s read"
            ) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _NoQuote(f"the request failed ({type(exc).__name__})") from None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _NoQuote("the body is not JSON") from None
        price = _number(json_path(data, pair.price_path), "price")
        if price <= 0:
            raise _NoQuote(f"the price {price:.6g} is not positive")
        stamp = _timestamp(json_path(data, pair.timestamp_path), pair.timestamp_unit)
        return price, stamp

    def read(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> SourceCheck | None:
        found = self._pair(base, quote)
        if found is None:
            return None
        pair, inverted = found
        host = urlsplit(pair.url).hostname or "?"
        name = f"http:{host}"

        def no_quote(why: str) -> SourceCheck:
            log.info("price API %s gave no quote: %s", host, why)
            return SourceCheck(
                source=name,
                kind=self.kind,
                onchain=False,
                answered=False,
                max_age_seconds=self.max_age,
                reason=f"no quote: {why}",
            )

        try:
            price, stamp = self.fetch(pair, base, quote)
        except _NoQuote as exc:
            return no_quote(str(exc))
        except Exception as exc:  # whatever else: no quote, never a crashed tick
            return no_quote(f"unexpected error ({type(exc).__name__})")
        wall = int(self.clock())  # an off-chain time: compared with this host's clock
        age = wall - stamp
        reason = ""
        if age < -self.config.max_clock_skew_seconds:
            reason = f"its timestamp is {-age}s in the future of this host's clock"
        return SourceCheck(
            source=name,
            kind=self.kind,
            onchain=False,
            answered=True,
            price=1 / price if inverted else price,
            observed_at=stamp,
            age_seconds=max(0, age),
            max_age_seconds=self.max_age,
            ok=not reason,
            reason=reason,
        )
