"""`[broadcast]` in agent.toml: where signed transactions go (public mempool or a private relay).

    [broadcast]
    mode = "private"                          # "public" (default) | "private"
    relay_url = "env:DEFIAGENT_RELAY_URL"     # a secret reference or a URL (https, or http on loopback)
    fallback = "none"                         # "none" (default) | "public": after expiry only
    max_blocks = 25                           # inclusion window: maxBlockNumber = head + max_blocks
    auth_key_ref = "vault:secret/relay#key"   # optional: Flashbots searcher identity (no funds)

A relay URL often carries an API key or an account id, so it is a secret reference like the
RPC URLs, resolved at start and TLS-checked there (docs/secrets.md). Nothing is silently
ignored: a relay URL or a public fallback given in public mode is refused (exit 2).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from defiagent.net.tls import require_secure_url
from defiagent.secrets.reference import check_reference, looks_like_reference, parse_reference

# The MEV-Share hint names a Flashbots-style relay accepts; an unknown one is a typo.
Hint = Literal[
    "calldata", "contract_address", "logs", "function_selector", "hash", "default_logs", "tx_hash"
]


class RelayPreferences(BaseModel):
    """`[broadcast.preferences]`: sent as `preferences` with each private transaction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fast: bool = Field(default=False, description="share with every builder (Flashbots 'fast')")
    hints: list[Hint] = Field(
        default_factory=list,
        description="what the relay may reveal to searchers; empty = nothing but the hash",
    )
    builders: list[str] = Field(default_factory=list, description="builders allowed to see it")

    def as_params(self) -> dict[str, object]:
        privacy: dict[str, object] = {"hints": list(self.hints) or ["hash"]}
        if self.builders:
            privacy["builders"] = list(self.builders)
        return {"fast": self.fast, "privacy": privacy}


class BroadcastConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["public", "private"] = Field(
        default="public",
        description="public: eth_sendRawTransaction to rpc_url; private: to relay_url",
    )
    relay_url: str | None = Field(
        default=None,
        description="relay speaking eth_sendPrivateTransaction/eth_sendBundle (a secret reference)",
    )
    fallback: Literal["none", "public"] = Field(
        default="none",
        description="public: an expired private transaction is sent publicly, once",
    )
    max_blocks: int = Field(
        default=25, ge=1, le=1_000, description="blocks a private transaction may wait"
    )
    relay_timeout_seconds: float = Field(default=10.0, gt=0)
    auth_key_ref: str | None = Field(
        default=None,
        description="a secret reference to a searcher identity key (X-Flashbots-Signature)",
    )
    preferences: RelayPreferences = Field(default_factory=RelayPreferences)

    @field_validator("relay_url")
    @classmethod
    def _relay_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if looks_like_reference(value):  # resolved and TLS-checked at start
            parse_reference(value)
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (a bad port raises here)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, e.g. https://rpc.flashbots.net")
        return require_secure_url(value)

    @field_validator("auth_key_ref")
    @classmethod
    def _auth_key(cls, value: str | None) -> str | None:
        return None if value is None else check_reference(value)  # never the key itself

    @model_validator(mode="after")
    def _consistent(self) -> BroadcastConfig:
        if self.mode == "private" and not self.relay_url:
            raise ValueError('mode = "private" needs relay_url (the relay to send to)')
        if self.mode == "public" and self.relay_url:
            raise ValueError(
                'relay_url is set but mode is "public": it would be ignored; '
                'set mode = "private" or remove relay_url'
            )
        if self.mode == "public" and self.fallback != "none":
            raise ValueError('fallback applies only to mode = "private"')
        if self.mode == "public" and self.auth_key_ref:
            raise ValueError('auth_key_ref applies only to mode = "private"')
        return self
