"""EIP-712 documents the allowlist signs, and signing/recovery for any signer backend.

Three documents: a reviewer's approval of a whole entry (bound to its canonical hash),
a reviewer's triage of one Slither finding (bound to the finding id and the codehash, or
to one source file's sha256 for a reusable review),
and an auditor's ERC-7512-style audit record. Typed data rather than a bare hash so a
hardware wallet shows the contract, codehash and entry hash being approved.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from defiagent.allowlist.models import AllowlistEntry, AuditRecord, TriagedFinding
from defiagent.errors import Refused

DOMAIN_NAME = "defiagent contract allowlist"
DOMAIN_VERSION = "1"
ZERO32 = "0x" + "00" * 32
ZERO_ADDRESS = "0x" + "00" * 20

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
]


def canonical_json(entry: AllowlistEntry) -> bytes:
    """Everything in the entry except its approvals, as sorted compact JSON (UTF-8)."""
    data = entry.model_dump(mode="json", exclude={"approvals"})
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: AllowlistEntry) -> str:
    return "0x" + keccak(canonical_json(entry)).hex()


def approval_typed_data(entry: AllowlistEntry) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [*_DOMAIN_FIELDS, {"name": "chainId", "type": "uint256"}],
            "AllowlistApproval": [
                {"name": "contract", "type": "address"},
                {"name": "name", "type": "string"},
                {"name": "codehash", "type": "bytes32"},
                {"name": "implementationCodehash", "type": "bytes32"},
                {"name": "entryHash", "type": "bytes32"},
            ],
        },
        "primaryType": "AllowlistApproval",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": entry.chain_id},
        "message": {
            "contract": entry.address,
            "name": entry.name,
            "codehash": entry.codehash,
            "implementationCodehash": entry.proxy.implementation_codehash
            if entry.proxy
            else ZERO32,
            "entryHash": entry_hash(entry),
        },
    }


def triage_typed_data(slither_id: str, check: str, codehash: str, reason: str) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": list(_DOMAIN_FIELDS),
            "SlitherTriage": [
                {"name": "slitherId", "type": "string"},
                {"name": "check", "type": "string"},
                {"name": "codehash", "type": "bytes32"},
                {"name": "reason", "type": "string"},
            ],
        },
        "primaryType": "SlitherTriage",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION},
        "message": {
            "slitherId": slither_id,
            "check": check,
            "codehash": codehash,
            "reason": reason,
        },
    }


def source_triage_typed_data(
    slither_id: str, check: str, source_unit: str, source_sha256: str, reason: str
) -> dict[str, Any]:
    """A triage bound to one source file's exact content (a reusable review): its own
    primary type, so it can never be taken for a codehash-bound one or the other way."""
    return {
        "types": {
            "EIP712Domain": list(_DOMAIN_FIELDS),
            "SlitherSourceTriage": [
                {"name": "slitherId", "type": "string"},
                {"name": "check", "type": "string"},
                {"name": "sourceUnit", "type": "string"},
                {"name": "sourceSha256", "type": "bytes32"},
                {"name": "reason", "type": "string"},
            ],
        },
        "primaryType": "SlitherSourceTriage",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION},
        "message": {
            "slitherId": slither_id,
            "check": check,
            "sourceUnit": source_unit,
            "sourceSha256": "0x" + source_sha256,
            "reason": reason,
        },
    }


def triage_record_typed_data(t: TriagedFinding) -> dict[str, Any]:
    if t.source_sha256 is not None and t.source_unit is not None:
        return source_triage_typed_data(
            t.slither_id, t.check, t.source_unit, t.source_sha256, t.reason
        )
    return triage_typed_data(t.slither_id, t.check, t.codehash or ZERO32, t.reason)


def _day_timestamp(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def audit_typed_data(record: AuditRecord) -> dict[str, Any]:
    """ERC-7512's AuditSummary shape (domain "ERC-7512"), extended with the findings list."""
    return {
        "types": {
            "EIP712Domain": list(_DOMAIN_FIELDS),
            "AuditSummary": [
                {"name": "auditor", "type": "Auditor"},
                {"name": "issuedAt", "type": "uint256"},
                {"name": "contracts", "type": "Contract[]"},
                {"name": "auditHash", "type": "bytes32"},
                {"name": "auditUri", "type": "string"},
                {"name": "findings", "type": "Finding[]"},
            ],
            "Auditor": [
                {"name": "name", "type": "string"},
                {"name": "uri", "type": "string"},
                {"name": "author", "type": "address"},
            ],
            "Contract": [
                {"name": "chainId", "type": "uint256"},
                {"name": "deployment", "type": "address"},
                {"name": "bytecodeHash", "type": "bytes32"},
            ],
            "Finding": [
                {"name": "id", "type": "string"},
                {"name": "severity", "type": "string"},
                {"name": "title", "type": "string"},
                {"name": "status", "type": "string"},
            ],
        },
        "primaryType": "AuditSummary",
        "domain": {"name": "ERC-7512", "version": "1"},
        "message": {
            "auditor": {
                "name": record.auditor.name,
                "uri": record.auditor.uri or "",
                "author": record.auditor.address,
            },
            "issuedAt": _day_timestamp(record.issued_at),
            "contracts": [
                {
                    "chainId": c.chain_id or 0,
                    "deployment": c.address or ZERO_ADDRESS,
                    "bytecodeHash": c.runtime_codehash,
                }
                for c in record.contracts
            ],
            "auditHash": "0x" + record.report_sha256,
            "auditUri": record.report_uri,
            "findings": [
                {"id": f.id, "severity": str(f.severity), "title": f.title, "status": f.status}
                for f in record.findings
            ],
        },
    }


def recover_typed(typed_data: dict[str, Any], signature: str | bytes) -> str | None:
    """The address that signed `typed_data`, or None if the signature is malformed."""
    try:
        address: str = Account.recover_message(
            encode_typed_data(full_message=typed_data), signature=signature
        )
        return address
    except Exception:  # malformed signature bytes: not a signature by anyone
        return None


def signer_address(signer: Any) -> str:
    return to_checksum_address(signer.address)


def sign_typed(signer: Any, typed_data: dict[str, Any]) -> str:
    """Sign with an eth-account LocalAccount or any `Signer` (sign_typed_data(dict) -> bytes).

    The signature is recovered and compared with the signer's address before it is used.
    """
    if isinstance(signer, LocalAccount):
        signature = bytes(signer.sign_typed_data(full_message=typed_data).signature)
    elif callable(getattr(signer, "sign_typed_data", None)):
        result = signer.sign_typed_data(typed_data)
        signature = bytes(getattr(result, "signature", result))
    else:
        raise TypeError("the signer needs .address and .sign_typed_data(dict) -> bytes")
    address = signer_address(signer)
    recovered = recover_typed(typed_data, signature)
    if recovered != address:
        raise Refused(f"the signer's signature recovers to {recovered}, not to {address}")
    return "0x" + signature.hex()
