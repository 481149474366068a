"""The vetting policy (`contracts_allowlist/policy.toml`): trusted auditors and thresholds.

The policy can only make checks stricter or looser at vetting time; it cannot activate an
entry. Activation needs M-of-N reviewer signatures over the entry itself, so a host that
can rewrite this file still cannot widen what the agent may call.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from defiagent.allowlist.models import Severity
from defiagent.errors import ConfigError
from defiagent.types import Address

POLICY_FILE = "policy.toml"

SLITHER_LEVELS = ("High", "Medium", "Low", "Informational", "Optimization")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrustedAuditor(_Section):
    name: str
    address: Address  # the key that signs this auditor's ERC-7512 records


class AuditPolicy(_Section):
    trusted_auditors: list[TrustedAuditor] = []
    min_audits: int = Field(default=1, ge=0)  # valid audits required per codehash
    max_age_days: int = Field(default=730, ge=1)
    fail_on_unresolved: list[Severity] = [Severity.CRITICAL, Severity.HIGH]
    unresolved_statuses: list[Literal["open", "acknowledged", "fixed"]] = ["open", "acknowledged"]
    require_auditor_signature: bool = False

    def trusted(self, address: str) -> TrustedAuditor | None:
        return next((a for a in self.trusted_auditors if a.address == address), None)


class SlitherPolicy(_Section):
    """A finding fails the gate when its impact AND its confidence are in these lists."""

    fail_impacts: list[str] = ["High", "Medium"]
    fail_confidences: list[str] = ["High", "Medium"]

    @field_validator("fail_impacts", "fail_confidences")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        out = []
        for level in value:
            match = next((x for x in SLITHER_LEVELS if x.lower() == level.lower()), None)
            if match is None:
                raise ValueError(f"{level!r} is not a Slither level ({', '.join(SLITHER_LEVELS)})")
            out.append(match)
        return out

    def fails(self, impact: str, confidence: str) -> bool:
        return impact in self.fail_impacts and confidence in self.fail_confidences


class SourcePolicy(_Section):
    # "partial": sources must compile to the deployed code (metadata may differ); "full"
    # needs the metadata hash too; "none" accepts sources that cannot be bound (say why).
    min_match: Literal["full", "partial", "none"] = "partial"
    # What to do with a contract proposed without sources (and no Slither result cached
    # for its codehash). "refuse": it is refused, as it cannot be bound to sources nor
    # analysed by Slither. "bytecode-only": it is judged on its runtime bytecode instead:
    # Mythril must run (whatever [mythril] use says), any high-severity issue refuses it,
    # audits and approvals are required as ever, and the entry records the basis. Sources
    # that are given are always bound and judged: this never excuses a mismatch.
    when_missing: Literal["refuse", "bytecode-only"] = "refuse"


class MythrilPolicy(_Section):
    # "off": not run; "optional": run when installed (.venv-mythril), else noted as skipped;
    # "required": a missing Mythril is an infrastructure error (exit 3). High-severity
    # issues fail the gate; the rest are reported.
    use: Literal["off", "optional", "required"] = "off"
    execution_timeout: int = Field(default=60, ge=1, le=3600)  # seconds per contract


class Policy(_Section):
    audits: AuditPolicy = AuditPolicy()
    slither: SlitherPolicy = SlitherPolicy()
    sources: SourcePolicy = SourcePolicy()
    mythril: MythrilPolicy = MythrilPolicy()


def load_policy(root: Path, *, required: bool = False) -> Policy:
    """The policy file in the allowlist root; the strict defaults when there is none."""
    path = Path(root) / POLICY_FILE
    if not path.is_file():
        if required:
            raise ConfigError(f"no vetting policy at {path}")
        return Policy()
    try:
        return Policy.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"{path} is not a valid policy file: {_first_error(exc)}") from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)
