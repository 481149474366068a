"""At start: every secret an agent config references, resolved once; every endpoint TLS-checked.

`prepare_agent_secrets(cfg)` configures the process's resolver from `[secrets]` and the CA
bundle from `[tls]`, resolves the URL references (rpc_url, rpc_urls, simulation.fork_url,
broadcast.relay_url) into the returned copy of the config, resolves every other reference
once (keystore password, KMS credentials, webhook URL, price API key, strategy secrets)
so a missing one stops the start before anything runs (exit 3), and checks each endpoint
against the TLS rule (exit 2). The values themselves stay in the resolver's memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from defiagent.errors import ConfigError
from defiagent.net.tls import check_secure_url, set_ca_bundle
from defiagent.secrets.reference import looks_like_reference
from defiagent.secrets.resolver import SecretResolver, configure

if TYPE_CHECKING:
    from defiagent.config import AgentConfig


def _url(resolver: SecretResolver, value: str, what: str) -> str:
    """A URL field: its reference resolved (and shown only by reference), TLS-checked."""
    if looks_like_reference(value):
        url = resolver.resolve(value, what=f"{what} ({value})").strip()
        check_secure_url(url, what=f"{what} ({value})")
        return url
    from defiagent.chain.forwarder import redact_url

    check_secure_url(value, what=f"{what} {redact_url(value)}")
    return value


def references_in(cfg: AgentConfig) -> dict[str, str]:
    """what -> reference, for every non-URL secret the config names."""
    refs: dict[str, str] = {}
    signer: Any = cfg.signer
    if getattr(signer, "password_ref", None):
        refs["the keystore password"] = signer.password_ref
    creds = getattr(signer, "credentials", None)
    if creds is not None:
        for name in ("access_key_id", "secret_access_key", "session_token"):
            if getattr(creds, name):
                refs[f"the KMS {name.replace('_', ' ')}"] = getattr(creds, name)
    if cfg.alerts.webhook_url:
        refs["alerts.webhook_url"] = cfg.alerts.webhook_url
    if cfg.market.http.api_key:
        refs["market.http.api_key"] = cfg.market.http.api_key
    if cfg.broadcast.auth_key_ref:
        refs["broadcast.auth_key_ref"] = cfg.broadcast.auth_key_ref
    for sc in cfg.strategy_configs():
        for key, ref in sc.secrets.items():
            refs[f"strategy {sc.name} secret {key}"] = ref
    return refs


def check_endpoints(cfg: AgentConfig) -> None:
    """The TLS rule on every endpoint the config names literally (exit 2 on the first)."""
    for pair in cfg.market.http.pairs:
        check_secure_url(pair.url.replace("{", "").replace("}", ""), what="a market.http pair URL")
    for sc in cfg.strategy_configs():
        for url in sc.network:
            check_secure_url(url, what=f"strategy {sc.name} network endpoint {url}")
        base_url = sc.params.get("base_url")
        if isinstance(base_url, str):
            check_secure_url(base_url, what=f"strategy {sc.name} model endpoint")
    endpoint = getattr(cfg.signer, "endpoint_url", None)
    if endpoint:
        check_secure_url(endpoint, what="signer.endpoint_url")
    if cfg.tls.ca_bundle is not None and not cfg.tls.ca_bundle.is_file():
        raise ConfigError(f"tls.ca_bundle {cfg.tls.ca_bundle} is not a readable PEM file")


def prepare_agent_secrets(cfg: AgentConfig) -> AgentConfig:
    """The config with its URL references resolved; every other reference read once."""
    set_ca_bundle(cfg.tls.ca_bundle)
    check_endpoints(cfg)
    resolver = configure(cfg.secrets)
    update: dict[str, Any] = {
        "rpc_url": _url(resolver, cfg.rpc_url, "rpc_url"),
        "rpc_urls": [_url(resolver, u, f"rpc_urls[{i}]") for i, u in enumerate(cfg.rpc_urls)],
    }
    if cfg.simulation.fork_url:
        update["simulation"] = cfg.simulation.model_copy(
            update={"fork_url": _url(resolver, cfg.simulation.fork_url, "simulation.fork_url")}
        )
    if cfg.broadcast.relay_url:  # the private relay: often carries an account key
        update["broadcast"] = cfg.broadcast.model_copy(
            update={"relay_url": _url(resolver, cfg.broadcast.relay_url, "broadcast.relay_url")}
        )
    for what, ref in references_in(cfg).items():
        resolver.resolve(ref, what=f"{what} ({ref})")
    return cfg.model_copy(update=update)  # private attributes (its source file) carried over


def rpc_url_of(cfg: AgentConfig) -> str:
    """`cfg.rpc_url` as a URL, for commands that reach the chain outside the runtime (its
    reference resolved with `[secrets]`, TLS-checked)."""
    set_ca_bundle(cfg.tls.ca_bundle)
    return _url(configure(cfg.secrets), cfg.rpc_url, "rpc_url")
