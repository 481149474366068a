"""The reviewers file (`contracts_allowlist/reviewers.toml`): who may approve, and how many.

This file is the root of trust of the allowlist: whoever can edit it can appoint
reviewers. Deploy it read-only to the agent host, and pin its sha256 out of band
(`DEFIAGENT_REVIEWERS_SHA256` or the `reviewers_sha256=` argument) so that a compromised
host cannot swap in its own keys.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from defiagent.allowlist.policy import _first_error
from defiagent.errors import ConfigError, Refused
from defiagent.types import Address

REVIEWERS_FILE = "reviewers.toml"
PIN_ENV = "DEFIAGENT_REVIEWERS_SHA256"


class Reviewer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A person's name is personal data: it belongs in reviewers.personal.toml beside this
    # pinned file (defiagent.privacy.subjects), so erasing it leaves the pin and every
    # signature intact. Older files with the name here still load.
    name: str | None = Field(default=None, min_length=1)
    address: Address

    @property
    def label(self) -> str:
        """How messages name the reviewer: the name when this file has one, else the address."""
        return self.name or self.address


class Reviewers(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: int = Field(ge=1)  # M of the N reviewers listed
    reviewers: list[Reviewer] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Reviewers:
        addresses = [r.address for r in self.reviewers]
        if len(set(addresses)) != len(addresses):
            raise ValueError("a reviewer address is listed twice")
        if self.threshold > len(self.reviewers):
            raise ValueError(
                f"threshold {self.threshold} is more than the {len(self.reviewers)} reviewers"
            )
        return self

    def get(self, address: str) -> Reviewer | None:
        return next((r for r in self.reviewers if r.address.lower() == address.lower()), None)


def load_reviewers(root: Path, *, expected_sha256: str | None = None) -> Reviewers:
    """Read and validate the reviewers file; refuse if it is not the pinned one."""
    path = Path(root) / REVIEWERS_FILE
    if not path.is_file():
        raise ConfigError(f"no reviewers file at {path}: nobody can approve entries")
    raw = path.read_bytes()
    pin = expected_sha256 or os.environ.get(PIN_ENV)
    if pin:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != pin.lower().removeprefix("0x"):
            raise Refused(
                f"{path} has sha256 {digest}, not the pinned {pin}: the reviewer set was changed"
            )
    if path.stat().st_mode & 0o002:
        raise Refused(f"{path} is world-writable: anyone on this host could appoint reviewers")
    try:
        return Reviewers.model_validate(tomllib.loads(raw.decode()))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ConfigError(f"{path} is not a valid reviewers file: {_first_error(exc)}") from exc


def reviewers_sha256(root: Path) -> str:
    return hashlib.sha256((Path(root) / REVIEWERS_FILE).read_bytes()).hexdigest()
