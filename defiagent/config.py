"""agent.toml: the whole agent configuration, validated, overridable by DEFIAGENT_* variables.

Precedence: environment over file. Nested fields use `__`, e.g.
`DEFIAGENT_GUARD__PER_TX_VALUE_CAP__MAX_VALUE=250` or `DEFIAGENT_RPC_URL=...` (handy for
an RPC URL that embeds an API key: keep it out of the file). Every rule has its own
section, `[guard.<section>]` or `[risk.<section>]`, listed by `defiagent rules list`.
A bad value is one sentence naming the field (exit 2); nothing is started.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from defiagent.backtest.gates.registry import GatesConfig
from defiagent.broadcast.config import BroadcastConfig
from defiagent.errors import ConfigError
from defiagent.execution.fees import FeePolicy
from defiagent.guard.registry import GuardSection, RiskSection, merge_section
from defiagent.market.http_price import HttpPriceConfig
from defiagent.monitoring.alerts import AlertsConfig
from defiagent.monitoring.auto_kill import AutoKillConfig
from defiagent.net.tls import TlsConfig, require_secure_url
from defiagent.privacy.config import RetentionConfig
from defiagent.safe.config import SafeConfig
from defiagent.secrets.reference import looks_like_reference, parse_reference
from defiagent.secrets.settings import SecretsConfig
from defiagent.signing.config import SignerConfig
from defiagent.state_crypto.config import StateConfig
from defiagent.strategy.config import StrategyConfig
from defiagent.types import Address

if TYPE_CHECKING:  # the registry imports this module's users: no import at load time
    from defiagent.protocols.base import ProtocolAddresses

DEFAULT_STATE_DIR = Path(".defiagent")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProtocolsConfig(Section):
    """The contracts the planners target (each must also be an active allowlist entry).

    `router`, `weth` and `factory` are Uniswap V2's and WETH's; any other protocol of the
    registry (defiagent/protocols/registry.py) reads its own table `[protocols.<name>]`.
    """

    model_config = ConfigDict(extra="allow", frozen=True)  # the tables, checked below

    router: Address
    weth: Address
    factory: Address | None = None

    @model_validator(mode="after")
    def _protocol_tables(self) -> ProtocolsConfig:
        from defiagent.protocols.registry import validate_sections  # it imports the planners

        validate_sections(dict(self.model_extra or {}))
        return self

    def addresses(self) -> ProtocolAddresses:
        """What the planners are built with: these keys and every protocol's table."""
        from defiagent.protocols.base import ProtocolAddresses

        return ProtocolAddresses(
            router=self.router,
            weth=self.weth,
            factory=self.factory,
            sections={k: dict(v) for k, v in (self.model_extra or {}).items()},
        )


class ChainlinkFeed(Section):
    """An AggregatorV3 feed: the price of `base` in `quote` (whole units)."""

    base: Address
    quote: Address
    address: Address
    max_age_seconds: int | None = Field(
        default=None, gt=0, description="default market.max_reference_age_seconds"
    )
    min_answer: float | None = Field(
        default=None, description="circuit breaker (whole units): an answer at or below refuses"
    )
    max_answer: float | None = Field(
        default=None, description="circuit breaker (whole units): an answer at or above refuses"
    )

    @model_validator(mode="after")
    def _bounds(self) -> ChainlinkFeed:
        if (
            self.min_answer is not None
            and self.max_answer is not None
            and self.min_answer >= self.max_answer
        ):
            raise ValueError("min_answer must be below max_answer")
        return self


ReferenceKind = Literal["twap", "chainlink", "http"]


def _twap_only() -> list[ReferenceKind]:  # a function, so mypy sees the Literal list
    return ["twap"]


class MarketConfig(Section):
    pools: list[Address] = Field(
        default_factory=list, description="pairs to watch; empty = every allowlisted pool"
    )
    tokens: list[Address] = Field(
        default_factory=list, description="tokens to hold and value; empty = allowlisted tokens"
    )
    numeraire: Address | None = Field(
        default=None, description="the token values, caps and losses are measured in"
    )
    references: list[ReferenceKind] = Field(
        default_factory=_twap_only,
        description="sources checked against each pool's spot price (docs/price-sanity.md)",
    )
    min_sources: int = Field(
        default=2, ge=2, description="fresh, agreeing sources needed, spot included"
    )
    twap_min_window_seconds: int = Field(default=60, gt=0)
    twap_max_window_seconds: int = Field(default=3_600, gt=0)
    chainlink_feeds: list[ChainlinkFeed] = Field(default_factory=list)
    http: HttpPriceConfig = Field(default_factory=HttpPriceConfig)
    max_deviation_bps: float = Field(default=300, gt=0, le=10_000)
    max_reference_age_seconds: int = Field(default=600, gt=0)

    @model_validator(mode="after")
    def _sources(self) -> MarketConfig:
        if len(set(self.references)) != len(self.references):
            raise ValueError("references lists a source twice")
        if "chainlink" in self.references and not self.chainlink_feeds:
            raise ValueError("references has chainlink but chainlink_feeds is empty")
        if "http" in self.references and not self.http.pairs:
            raise ValueError("references has http but http.pairs is empty")
        if 1 + len(self.references) < self.min_sources:
            raise ValueError(
                f"min_sources is {self.min_sources} but spot and {len(self.references)} "
                "reference(s) can never reach it, so nothing would ever trade"
            )
        if not {"twap", "chainlink"} & set(self.references):
            raise ValueError(
                "references needs twap or chainlink: an off-chain price is never trusted alone"
            )
        return self


class SimulationConfig(Section):
    fork_url: str | None = Field(default=None, description="upstream to fork; default rpc_url")
    max_gas_per_tx: int = Field(default=1_000_000, gt=21_000)
    rpc_timeout_seconds: float = Field(default=10.0, gt=0)
    share_tolerance_bps: int = Field(
        default=10,
        ge=0,
        le=1_000,
        description="shares-as-previewed: how far an ERC-4626 call's shares may fall short "
        "of (deposit) or exceed (withdraw) the vault's own preview on the fork",
    )


class BacktestConfig(Section):
    """`[backtest]`: how `defiagent backtest` replays history, and how `run` judges its
    certificates (docs/backtest.md)."""

    certificates_dir: Path = Field(
        default=Path("backtest-certificates"),
        description="signed backtest certificates, one <strategy>.json each",
    )
    max_certificate_age_days: float = Field(
        default=30.0, gt=0, description="older certificates are refused by run"
    )
    start_balances: dict[str, float] = Field(
        default_factory=dict,
        description='whole units per token address or "ETH"; empty: 10,000 numeraire and 1 ETH',
    )
    eth_price: float | None = Field(
        default=None,
        gt=0,
        description="numeraire per ETH for gas when the history has no WETH pool",
    )
    mandate_margin: float = Field(
        default=0.5, ge=0, description="headroom of the certified mandate over the backtest"
    )
    gates: GatesConfig = Field(
        default_factory=GatesConfig,
        description="[backtest.gates.*]: each overfitting gate's thresholds (docs/backtest.md)",
    )


class MetricsConfig(Section):
    port: int | None = Field(default=None, ge=1, le=65_535, description="serve /metrics here")
    address: str = "127.0.0.1"


class AgentConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEFIAGENT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    rpc_url: str
    rpc_urls: list[str] = Field(
        default_factory=list,
        description="other, independent providers that must agree with rpc_url (a quorum)",
    )
    rpc_quorum: int = Field(
        default=2, ge=2, description="providers (rpc_url included) that must agree each tick"
    )
    chain_id: int = Field(gt=0)
    allowlist_dir: Path = Path("contracts_allowlist")
    state_dir: Path = DEFAULT_STATE_DIR
    tick_seconds: float = Field(default=12.0, gt=0)
    receipt_timeout_seconds: float = Field(default=120.0, gt=0)
    protocols: ProtocolsConfig
    market: MarketConfig = Field(default_factory=MarketConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    strategies: list[StrategyConfig] = Field(
        default_factory=list, description="several strategies side by side (replaces strategy)"
    )
    guard: GuardSection = Field(default_factory=GuardSection)
    risk: RiskSection = Field(default_factory=RiskSection)
    fees: FeePolicy = Field(default_factory=FeePolicy)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    auto_kill: AutoKillConfig = Field(default_factory=AutoKillConfig)
    signer: SignerConfig
    safe: SafeConfig | None = Field(
        default=None, description="trade from this Safe through its guard (docs/custody.md)"
    )
    pins_file: Path = Field(
        default=Path("strategy-pins.json"),
        description="the operator-signed pins of each strategy's code and params",
    )
    pin_signers: list[Address] = Field(
        default_factory=list, description="operator addresses whose pin signatures count"
    )
    state: StateConfig = Field(
        default_factory=StateConfig, description="[state.encryption]: the state dir at rest"
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    require_backtest: bool = Field(
        default=True,
        description="run refuses a strategy without a valid signed backtest certificate",
    )
    secrets: SecretsConfig = Field(
        default_factory=SecretsConfig,
        description="Vault / Secrets Manager access (docs/secrets.md)",
    )
    tls: TlsConfig = Field(default_factory=TlsConfig)
    broadcast: BroadcastConfig = Field(
        default_factory=BroadcastConfig,
        description="public mempool or a private relay (docs/agent.md#private-submission)",
    )
    _source: Path | None = PrivateAttr(default=None)  # the file it was read from

    @property
    def source(self) -> Path | None:
        return self._source

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if looks_like_reference(value):  # resolved at start (docs/secrets.md)
            parse_reference(value)
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (a bad port raises here)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, e.g. https://rpc.example")
        return require_secure_url(value)

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            cls._url(url)
        return value

    @model_validator(mode="after")
    def _quorum(self) -> AgentConfig:
        if self.rpc_urls and self.rpc_quorum > 1 + len(self.rpc_urls):
            raise ValueError(
                f"rpc_quorum is {self.rpc_quorum} but only {1 + len(self.rpc_urls)} providers "
                "are configured, so no tick could ever run"
            )
        if self.rpc_url in self.rpc_urls:
            raise ValueError("rpc_urls repeats rpc_url: a provider cannot vouch for itself")
        return self

    @model_validator(mode="after")
    def _strategies(self) -> AgentConfig:
        names = [s.name for s in self.strategy_configs()]
        if len(names) != len(set(names)):
            raise ValueError("strategies: each strategy may appear once")
        for sc in self.strategy_configs():
            self.risk_for(sc)  # a bad per-strategy limit is a config error at load
        return self

    def strategy_configs(self) -> list[StrategyConfig]:
        return list(self.strategies) or [self.strategy]

    def risk_for(self, sc: StrategyConfig) -> BaseModel:
        """The [risk] section with this strategy's own overrides applied."""
        if not sc.risk:
            return self.risk
        return merge_section(self.risk, sc.risk, f"strategy {sc.name}: risk")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file; no .env files, no secrets directory.
        return (env_settings, init_settings)

    def resolved(self, base_dir: Path) -> AgentConfig:
        """Relative paths made absolute against the config file's folder."""

        def fix(p: Path) -> Path:
            return p if p.is_absolute() else (base_dir / p).resolve()

        update: dict[str, Any] = {
            "allowlist_dir": fix(self.allowlist_dir),
            "state_dir": fix(self.state_dir),
            "pins_file": fix(self.pins_file),
            "backtest": self.backtest.model_copy(
                update={"certificates_dir": fix(self.backtest.certificates_dir)}
            ),
            "strategy": self.strategy.resolved(base_dir),
            "strategies": [s.resolved(base_dir) for s in self.strategies],
            "secrets": self.secrets.resolved(base_dir),
        }
        if self.tls.ca_bundle is not None:
            update["tls"] = TlsConfig(ca_bundle=fix(self.tls.ca_bundle.expanduser()))
        path = getattr(self.signer, "path", None)
        if isinstance(path, Path):
            update["signer"] = self.signer.model_copy(update={"path": fix(path)})
        return self.model_copy(update=update)

    def redacted(self) -> dict[str, Any]:
        """The config as it may be logged: the RPC URLs cut to scheme and host."""
        data = self.model_dump(mode="json")
        data["rpc_url"] = _host_only(self.rpc_url)
        data["rpc_urls"] = [_host_only(u) for u in self.rpc_urls]
        if self.simulation.fork_url:
            data["simulation"]["fork_url"] = _host_only(self.simulation.fork_url)
        if self.broadcast.relay_url:
            data["broadcast"]["relay_url"] = _host_only(self.broadcast.relay_url)
        return data


def _host_only(url: str) -> str:
    # Many RPC providers put the API key in the path or query: never log more than the host.
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…" if rest != host else f"{scheme}://{host}"


def _field_error(exc: ValidationError, source: str) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if p not in ("keystore", "ledger", "kms")]
    where = ".".join(loc) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "is required"
    return ConfigError(f"config field {where} in {source}: {message}")


def parse_config(data: dict[str, Any], *, source: str = "the config") -> AgentConfig:
    try:
        return AgentConfig(**data)
    except ValidationError as exc:
        raise _field_error(exc, source) from None


def load_config(path: Path | str) -> AgentConfig:
    """Read, validate and resolve an agent.toml (environment variables override it)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"the config file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"the config file {path} is a folder, not a TOML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the config file {path} is not TOML: it is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"the config file {path} cannot be read: {exc.strerror or exc}") from exc
    cfg = parse_config(data, source=str(path)).resolved(path.parent.resolve())
    cfg._source = path.resolve()
    return cfg
