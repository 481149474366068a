"""Backtest certificates: what was tested, on which data, with which result, signed.

A certificate binds a strategy's pin (the sha256 of its code and of its params, as
`defiagent strategy pin` hashes them) to the data it was replayed on (range and content
hash), the figures, each overfitting gate's verdict, and the mandate measured from the
backtest's trades. The operator signs it (EIP-191 personal_sign, a key in pin_signers, the
TOTP code when enrolled), as strategy pins are signed.

`run` (with `require_backtest = true`, the default) reads each strategy's certificate from
`backtest.certificates_dir/<strategy>.json` and refuses to start, naming the reason, when
it is missing, unreadable, not signed by a pin signer, failed, older than
`backtest.max_certificate_age_days`, or for other code or other params. A valid
certificate's mandate becomes the strategy's mandate: live drift is measured against what
was tested.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.backtest.models import BacktestMetrics, BacktestResult
from defiagent.config import AgentConfig
from defiagent.errors import Refused
from defiagent.market.history import MarketHistory
from defiagent.monitoring.events import TradeEvent
from defiagent.strategy.config import StrategyConfig
from defiagent.strategy.mandate import Mandate
from defiagent.strategy.pins import (
    MessageSigner,
    _sha256,
    canonical_json,
    code_digest,
    params_digest,
)
from defiagent.types import Address

CERT_VERSION = 1
BACKTEST_COMMAND = "defiagent backtest -c agent.toml --data DIR --certify --key KEYSTORE"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


class GateRecord(_Model):
    """One overfitting gate's verdict, as the certificate keeps it."""

    gate: str
    passed: bool
    detail: str = ""
    data: dict[str, Any] = {}


class DataRange(_Model):
    source: str
    chain_id: int
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    start_block: int
    end_block: int
    start_time: int
    end_time: int
    ticks: int


class BacktestCertificate(_Model):
    version: Literal[1] = 1
    strategy: str
    code_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    params_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    params: dict[str, Any]
    data: DataRange
    figures: BacktestMetrics
    gates: list[GateRecord] = []
    passed: bool
    mandate: Mandate
    issued_at: str  # ISO 8601, UTC
    signer: Address
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")

    def body(self) -> dict[str, Any]:
        """Everything the signature covers (all but the signature)."""
        return json.loads(canonical_json(self.model_dump(mode="json", exclude={"signature"})))


def signing_message(body: dict[str, Any]) -> bytes:
    """The text the operator signs: short enough for a Ledger screen."""
    return (
        "defiagent backtest certificate\n"
        f"strategy: {body['strategy']}\n"
        f"signer: {to_checksum_address(body['signer'])}\n"
        f"passed: {'yes' if body['passed'] else 'no'}\n"
        f"certificate sha256: {_sha256(canonical_json(body))}"
    ).encode()


def gate_records(verdicts: Sequence[Any]) -> list[GateRecord]:
    """The gates' verdicts (pydantic models or dicts with a name and a pass flag) as records."""
    out = []
    for v in verdicts:
        data = v.model_dump(mode="json") if isinstance(v, BaseModel) else dict(v)
        name = next((data[k] for k in ("gate", "name", "id") if k in data), "gate")
        passed = next((bool(data[k]) for k in ("passed", "ok", "allowed") if k in data), False)
        detail = next((str(data[k]) for k in ("detail", "reason", "message") if k in data), "")
        rest = {
            k: x
            for k, x in data.items()
            if k not in ("gate", "name", "id", "passed", "ok", "allowed", "detail", "reason")
        }
        out.append(GateRecord(gate=str(name), passed=passed, detail=detail, data=rest))
    return out


def backtest_mandate(result: BacktestResult, *, margin: float) -> Mandate:
    """Mandate.from_backtest over the backtest's trades (as the ledger's TradeEvents)."""
    events = [
        TradeEvent(
            at=float(t.timestamp),
            strategy=t.strategy,
            intent_id=f"backtest-{t.tick}",
            kind=t.kind,
            token_in=t.token_in or None,
            token_out=t.token_out or None,
            amount_in=t.amount_in,
            amount_out=t.amount_out,
            value_in=t.value_in,
            value_out=t.value_out,
            slippage_bps=t.slippage_bps,
            realized_pnl=t.realized_pnl,
            portfolio_value=t.portfolio_value,
            gas_used=t.gas_used,
        )
        for t in result.trades
    ]
    return Mandate.from_backtest(events, margin=margin)


def issue_certificate(
    cfg: AgentConfig,
    sc: StrategyConfig,
    result: BacktestResult,
    history: MarketHistory,
    gates: Sequence[Any],
    signer: MessageSigner,
    *,
    now: datetime | None = None,
) -> BacktestCertificate:
    """Build and sign the certificate of `result` for `sc` (its code as it is on disk now,
    the params the backtest ran with)."""
    from defiagent.strategy.pins import check_pin_signer

    address = check_pin_signer(cfg, signer.address)
    if sc.params != result.params:
        raise Refused(
            f"the backtest of {sc.name} ran with other params than its config's; certify "
            "the params the strategy will run with"
        )
    records = gate_records(gates)
    body: dict[str, Any] = {
        "version": CERT_VERSION,
        "strategy": sc.name,
        "code_sha256": code_digest(sc).sha256,
        "params_sha256": params_digest(sc.params),
        "params": json.loads(canonical_json(sc.params)),
        "data": DataRange(
            source=history.meta.source,
            chain_id=history.meta.chain_id,
            sha256=history.content_hash,
            start_block=result.start_block,
            end_block=result.end_block,
            start_time=result.start_time,
            end_time=result.end_time,
            ticks=result.metrics.n_ticks,
        ).model_dump(mode="json"),
        "figures": result.metrics.model_dump(mode="json"),
        "gates": [r.model_dump(mode="json") for r in records],
        "passed": all(r.passed for r in records),
        "mandate": backtest_mandate(result, margin=cfg.backtest.mandate_margin).model_dump(
            mode="json", exclude_none=True
        ),
        "issued_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "signer": address,
    }
    # The model first, so the signature covers exactly what the file will hold and be read as.
    unsigned = BacktestCertificate.model_validate(body | {"signature": "0x" + "00" * 65})
    signature = bytes(signer.sign_message(signing_message(unsigned.body())))
    cert = unsigned.model_copy(update={"signature": "0x" + signature.hex()})
    if recover(cert) != address:
        raise Refused(f"the signer's signature over the certificate does not recover to {address}")
    return cert


def recover(cert: BacktestCertificate) -> str:
    try:
        return Account.recover_message(
            encode_defunct(primitive=signing_message(cert.body())),
            signature=bytes.fromhex(cert.signature[2:]),
        )
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise Refused(f"the certificate's signature is not a valid signature: {exc}") from exc


def certificate_path(cfg: AgentConfig, strategy: str) -> Path:
    return Path(cfg.backtest.certificates_dir) / f"{strategy}.json"


def write_certificate(cfg: AgentConfig, cert: BacktestCertificate) -> Path:
    from defiagent.operator.files import write_atomic

    path = certificate_path(cfg, cert.strategy)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(cert.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    # Not secret (hashes, figures, a signature): readable by CI and reviewers.
    write_atomic(path, text, mode=0o644, what=f"the backtest certificate {path}")
    return path


def read_certificate(path: Path) -> BacktestCertificate:
    """Parse a certificate; Refused (exit 1: the strategy may not run) when it is not one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Refused(
            f"{path} does not exist: strategy {path.stem} has no backtest certificate, so it "
            f"may not run; certify it with `{BACKTEST_COMMAND}` (or set require_backtest = "
            "false for development)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"the backtest certificate {path} cannot be read: {exc}") from None
    try:
        return BacktestCertificate.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise Refused(
            f"the backtest certificate {path} is malformed at {where}: {first['msg']}"
        ) from None


def check_certificate(
    cfg: AgentConfig, sc: StrategyConfig, *, now: datetime | None = None
) -> BacktestCertificate:
    """The strategy's certificate when it holds for `sc` as configured now; Refused with the
    one sentence that says why not."""
    path = certificate_path(cfg, sc.name)
    cert = read_certificate(path)
    who = f"strategy {sc.name}"
    if cert.strategy != sc.name:
        raise Refused(f"{path} certifies strategy {cert.strategy}, not {sc.name}")
    recovered = recover(cert)
    if recovered != cert.signer:
        raise Refused(
            f"the backtest certificate {path} was changed after it was signed (its signature "
            f"recovers to {recovered}, not to its signer {cert.signer})"
        )
    if cert.signer not in cfg.pin_signers:
        raise Refused(
            f"the backtest certificate {path} is signed by {cert.signer}, which is not one of "
            "pin_signers"
        )
    if not cert.passed:
        failed = [g.gate for g in cert.gates if not g.passed]
        raise Refused(
            f"{who}: its backtest certificate records a failed backtest (gate"
            f"{'s' if len(failed) != 1 else ''} {', '.join(failed) or 'unknown'} failed), so "
            "it may not run"
        )
    try:
        issued = datetime.fromisoformat(cert.issued_at)
    except ValueError:
        raise Refused(f"the backtest certificate {path} has no valid issue time") from None
    if issued.tzinfo is None:
        raise Refused(f"the backtest certificate {path} has an issue time without a timezone")
    now = now or datetime.now(UTC)
    max_age = timedelta(days=cfg.backtest.max_certificate_age_days)
    if now - issued > max_age:
        days = (now - issued).total_seconds() / 86_400
        raise Refused(
            f"{who}: its backtest certificate is {days:.1f} days old (limit "
            f"{cfg.backtest.max_certificate_age_days:g}, backtest.max_certificate_age_days); "
            f"backtest it again on recent data with `{BACKTEST_COMMAND}`"
        )
    if issued - now > timedelta(minutes=5):
        raise Refused(f"{who}: its backtest certificate is dated in the future ({cert.issued_at})")
    if code_digest(sc).sha256 != cert.code_sha256:
        raise Refused(
            f"{who}: its code changed since it was backtested (certified code sha256 "
            f"{cert.code_sha256[:12]}…); backtest and certify it again"
        )
    if params_digest(sc.params) != cert.params_sha256:
        now_params = json.loads(canonical_json(sc.params))
        changed = sorted(
            k
            for k in set(now_params) | set(cert.params)
            if canonical_json(now_params.get(k)) != canonical_json(cert.params.get(k))
        )
        raise Refused(
            f"{who}: its params differ from the backtested ones ({', '.join(changed) or 'their encoding'} "
            "changed); backtest and certify it again"
        )
    return cert


def require_certificates(
    cfg: AgentConfig, *, now: datetime | None = None
) -> dict[str, BacktestCertificate]:
    """Every configured strategy's valid certificate (Refused at the first that fails)."""
    return {sc.name: check_certificate(cfg, sc, now=now) for sc in cfg.strategy_configs()}
