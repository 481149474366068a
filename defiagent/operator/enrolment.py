"""The operator's TOTP enrolment: `state_dir/operator-totp.json` (mode 0600).

It holds the base32 secret, the issuer and account name shown in the authenticator app,
when it was enrolled, and the last accepted time-step counter: a code is accepted only
for a later step than the last one accepted, so a code is never accepted twice.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pyotp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.errors import InfraError, Refused
from defiagent.operator.files import read_private_json, write_private_json
from defiagent.state_crypto.files import open_json, seal_json

FILENAME = "operator-totp.json"
WHAT = "operator enrolment file"
DEFAULT_ISSUER = "defiagent"


class Enrolment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    secret: str = Field(repr=False)
    issuer: str = DEFAULT_ISSUER
    name: str
    enrolled_at: str
    last_counter: int | None = None  # time-step counter of the last accepted code
    digits: int = 6
    interval: int = 30

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(
            self.secret,
            digits=self.digits,
            interval=self.interval,
            issuer=self.issuer,
            name=self.name,
        )

    def provisioning_uri(self) -> str:
        return self.totp().provisioning_uri()


def new_enrolment(name: str, issuer: str = DEFAULT_ISSUER) -> Enrolment:
    """A fresh secret (160 random bits), not yet stored."""
    return Enrolment(
        secret=new_secret(),
        issuer=issuer,
        name=name,
        enrolled_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def new_secret() -> str:
    return pyotp.random_base32()


class EnrolmentStore:
    """Reads and writes the enrolment file of one state dir."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILENAME

    def exists(self) -> bool:
        """True when a file is there, readable or not: an unreadable one still demands a code."""
        return self.path.exists() or self.path.is_symlink()

    def load(self) -> Enrolment | None:
        data = read_private_json(self.path, WHAT)
        if data is None:
            return None
        data = open_json(self.path, data)  # sealed in an encrypted state dir
        try:
            return Enrolment.model_validate(data)
        except ValidationError as exc:
            raise Refused(
                f"the {WHAT} {self.path} is not a valid enrolment ({exc.errors()[0]['msg']})"
            ) from exc

    def save(self, enrolment: Enrolment) -> None:
        write_private_json(self.path, seal_json(self.path, enrolment.model_dump()))

    def delete(self) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        except OSError as exc:
            raise InfraError(f"the {WHAT} {self.path} could not be removed: {exc}") from exc
