"""The people whose data the agent keeps, and their export and erasure.

Two kinds of subject:
* a reviewer: their address in `reviewers.toml` (pinned by sha256; the address is needed to
  verify their signatures, so it stays) and their name and contact in
  `reviewers.personal.toml` beside it (not pinned, not signed: erasable). A name still
  inline in `reviewers.toml` (the older format) is taken out of it by an erase, which
  changes the file's sha256: the new one is reported, to update the pin.
* the operator: the account name of the TOTP enrolment (`operator-totp.json`); an erase
  replaces it with a pseudonym and keeps the second factor working.

Signatures (approvals, triage) are over entry hashes and typed data that hold no name, so
neither an erase nor a pseudonym breaks them. The audit log is never rewritten (its chain
would break): records that mention a subject are listed by an export and age out through
`[retention]`. An erase is recorded there, naming the fields erased, not their values.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.allowlist.reviewers import REVIEWERS_FILE
from defiagent.errors import ConfigError, Refused
from defiagent.types import Address

PERSONAL_FILE = "reviewers.personal.toml"
AUDIT_FILE = "audit.jsonl"
ERASED = "erased"


class ReviewerPersonal(BaseModel):
    """What identifies a reviewer as a person, kept beside the pinned reviewers file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address
    name: str | None = Field(default=None, min_length=1)
    contact: str | None = Field(default=None, min_length=1, description="e-mail, chat handle")


class PersonalFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reviewers: list[ReviewerPersonal] = []


def load_personal(root: Path) -> PersonalFile:
    path = Path(root) / PERSONAL_FILE
    if not path.is_file():
        return PersonalFile()
    try:
        return PersonalFile.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ConfigError(f"{path} is not a valid reviewers' personal file: {exc}") from None


def save_personal(root: Path, personal: PersonalFile) -> None:
    from defiagent.operator.files import write_atomic

    data = personal.model_dump(mode="json", exclude_none=True)
    write_atomic(Path(root) / PERSONAL_FILE, tomli_w.dumps(data), mode=0o600)


class SubjectExport(BaseModel):
    """Everything kept about one person, in one document."""

    model_config = ConfigDict(frozen=True)

    subject: str
    kind: Literal["reviewer", "operator"]
    personal: dict[str, Any]  # the erasable fields
    kept_for_verification: dict[str, Any]  # what stays: needed to check signatures
    where: list[str]  # the files that hold it
    signatures: list[dict[str, Any]] = []  # approvals and triage records they signed
    audit_records: list[dict[str, Any]] = []  # seq, ts, kind of each record naming them


class EraseResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject_sha256: str  # the subject, hashed: the erase record does not name them again
    kind: Literal["reviewer", "operator"]
    erased_fields: list[str]
    files: list[str]
    reviewers_sha256: str | None = None  # the new pin, when reviewers.toml had to change


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


class Subjects:
    """The subjects of one allowlist root and one state dir."""

    def __init__(self, allowlist_dir: Path | None, state_dir: Path | None) -> None:
        self.allowlist_dir = Path(allowlist_dir) if allowlist_dir else None
        self.state_dir = Path(state_dir) if state_dir else None

    # -- reviewers ------------------------------------------------------------------------
    def _reviewers_raw(self) -> dict[str, Any] | None:
        if self.allowlist_dir is None or not (self.allowlist_dir / REVIEWERS_FILE).is_file():
            return None
        try:
            return tomllib.loads((self.allowlist_dir / REVIEWERS_FILE).read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.allowlist_dir / REVIEWERS_FILE} is not TOML: {exc}") from None

    def _reviewer_address(self, subject: str) -> str | None:
        """The reviewer `subject` names (by address, or by a name held for them)."""
        raw = self._reviewers_raw()
        if raw is None:
            return None
        assert self.allowlist_dir is not None
        personal = load_personal(self.allowlist_dir)
        for r in raw.get("reviewers", []):
            address = str(r.get("address", ""))
            if _same(address, subject) or (r.get("name") and _same(str(r["name"]), subject)):
                return address
        for p in personal.reviewers:
            if _same(p.address, subject) or (p.name and _same(p.name, subject)):
                return p.address
        return None

    def _signatures(self, address: str) -> list[dict[str, Any]]:
        from defiagent.allowlist.store import load_entries

        assert self.allowlist_dir is not None
        found: list[dict[str, Any]] = []
        for loaded in load_entries(self.allowlist_dir):
            e = loaded.entry
            for a in e.approvals:
                if _same(a.reviewer, address):
                    found.append(
                        {"entry": f"{e.chain_id}/{e.address}", "approval": str(a.signed_at)}
                    )
            for t in e.slither.triaged if e.slither else []:
                if _same(t.reviewer, address):
                    found.append({"entry": f"{e.chain_id}/{e.address}", "triage": t.slither_id})
        return found

    # -- the operator ---------------------------------------------------------------------
    def _enrolment(self) -> Any:
        if self.state_dir is None:
            return None
        from defiagent.operator.enrolment import EnrolmentStore

        return EnrolmentStore(self.state_dir).load()

    def _is_operator(self, subject: str) -> bool:
        enrolment = self._enrolment()
        return enrolment is not None and _same(enrolment.name, subject) and enrolment.name != ERASED

    # -- the audit log --------------------------------------------------------------------
    def _audit_mentions(self, needles: list[str]) -> list[dict[str, Any]]:
        if self.state_dir is None or not (self.state_dir / AUDIT_FILE).is_file():
            return []
        from defiagent.state_crypto.files import open_payload

        wanted = [n.lower() for n in needles if n]
        found = []
        with open(self.state_dir / AUDIT_FILE, "rb") as fh:
            for raw in fh:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                payload = open_payload(self.state_dir, record)
                text = json.dumps(payload, default=str).lower()
                if any(n in text for n in wanted):
                    found.append({k: record.get(k) for k in ("seq", "ts", "kind")})
        return found

    # -- export and erase -----------------------------------------------------------------
    def find(self, subject: str) -> tuple[Literal["reviewer", "operator"], str]:
        subject = subject.strip()
        if not subject:
            raise ConfigError("--subject is empty")
        address = self._reviewer_address(subject)
        if address is not None:
            return "reviewer", address
        if self._is_operator(subject):
            return "operator", subject
        raise Refused(
            f"no reviewer or operator is known as {subject!r} (looked in "
            f"{self.allowlist_dir or 'no allowlist'} and {self.state_dir or 'no state dir'})",
            remedy="give a reviewer's address or name, or the operator's enrolment name",
        )

    def export(self, subject: str) -> SubjectExport:
        kind, ref = self.find(subject)
        if kind == "reviewer":
            assert self.allowlist_dir is not None
            inline: dict[str, Any] = next(
                (
                    r
                    for r in (self._reviewers_raw() or {}).get("reviewers", [])
                    if _same(str(r.get("address", "")), ref)
                ),
                {},
            )
            held = next(
                (p for p in load_personal(self.allowlist_dir).reviewers if _same(p.address, ref)),
                None,
            )
            personal = held.model_dump(exclude={"address"}, exclude_none=True) if held else {}
            if inline.get("name"):
                personal.setdefault("name", inline["name"])
            where = [str(self.allowlist_dir / REVIEWERS_FILE)]
            if held is not None:
                where.append(str(self.allowlist_dir / PERSONAL_FILE))
            needles = [ref, *(v for v in personal.values() if isinstance(v, str))]
            return SubjectExport(
                subject=subject,
                kind=kind,
                personal=personal,
                kept_for_verification={"address": ref},
                where=where,
                signatures=self._signatures(ref),
                audit_records=self._audit_mentions(needles),
            )
        enrolment = self._enrolment()
        assert self.state_dir is not None
        assert enrolment is not None
        return SubjectExport(
            subject=subject,
            kind=kind,
            personal={"name": enrolment.name, "issuer": enrolment.issuer},
            kept_for_verification={
                "enrolled_at": enrolment.enrolled_at,
                "totp_secret": "held, never exported: it is a credential, not data about you",
            },
            where=[str(self.state_dir / "operator-totp.json")],
            audit_records=self._audit_mentions([enrolment.name]),
        )

    def erase(self, subject: str) -> EraseResult:
        if self.state_dir is None:
            raise ConfigError("an erase is recorded in the agent's audit log: no state dir given")
        kind, ref = self.find(subject)
        digest = hashlib.sha256(subject.strip().lower().encode()).hexdigest()
        if kind == "operator":
            from defiagent.operator.enrolment import EnrolmentStore
            from defiagent.operator.files import state_lock

            assert self.state_dir is not None
            with state_lock(self.state_dir):
                store = EnrolmentStore(self.state_dir)
                enrolment = store.load()
                assert enrolment is not None
                store.save(enrolment.model_copy(update={"name": ERASED}))
            result = EraseResult(
                subject_sha256=digest,
                kind=kind,
                erased_fields=["name"],
                files=[str(store.path)],
            )
        else:
            result = self._erase_reviewer(ref, digest)
        self._audit_erase(result)
        return result

    def _erase_reviewer(self, address: str, digest: str) -> EraseResult:
        from defiagent.allowlist.reviewers import reviewers_sha256
        from defiagent.operator.files import write_atomic

        root = self.allowlist_dir
        assert root is not None
        fields: list[str] = []
        files: list[str] = []
        personal = load_personal(root)
        held = [p for p in personal.reviewers if _same(p.address, address)]
        if held:
            fields += sorted({f for p in held for f in ("name", "contact") if getattr(p, f)})
            kept = [p for p in personal.reviewers if not _same(p.address, address)]
            save_personal(root, PersonalFile(reviewers=kept))
            files.append(str(root / PERSONAL_FILE))
        new_pin = None
        raw = self._reviewers_raw() or {}
        inline = [r for r in raw.get("reviewers", []) if _same(str(r.get("address", "")), address)]
        if any("name" in r for r in inline):
            for r in inline:
                r.pop("name", None)
            path = root / REVIEWERS_FILE
            mode = path.stat().st_mode & 0o777
            write_atomic(path, tomli_w.dumps(raw), mode=mode)
            new_pin = reviewers_sha256(root)
            fields = sorted({*fields, "name"})
            files.append(str(path))
        if not fields:
            raise Refused(
                f"nothing personal is held about reviewer {address} beyond the address "
                "that verifies their signatures, so there is nothing to erase"
            )
        return EraseResult(
            subject_sha256=digest,
            kind="reviewer",
            erased_fields=fields,
            files=files,
            reviewers_sha256=new_pin,
        )

    def _audit_erase(self, result: EraseResult) -> None:
        assert self.state_dir is not None  # erase() refuses without one
        from defiagent.monitoring.audit_log import AuditLog

        with AuditLog(self.state_dir / AUDIT_FILE) as audit:
            audit.record("privacy-erase", result.model_dump())
