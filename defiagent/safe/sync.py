"""A guard configuration change as an M-of-N approved Safe transaction.

propose -> approve (each owner signs the SafeTx, EIP-712, like an allowlist approval) ->
execute (anyone sends it once the Safe's threshold of valid signatures is there). The
proposal file holds the transaction, the diff it makes and the signatures; any edit to the
transaction voids them (they sign its hash). The first sync also enables the guard as a
module, in the same transaction (a MultiSendCallOnly batch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from web3 import Web3

from defiagent.errors import ConfigError, Refused
from defiagent.safe.chain import SafeRef, read_state, send
from defiagent.safe.multisend import encode_multisend
from defiagent.safe.rules import GuardConfig, config_diff
from defiagent.safe.safe_tx import CALL, DELEGATECALL, OwnerSignature, SafeTx, call_data


class SyncProposal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    safe_tx: SafeTx
    safe_tx_hash: str
    config_hash: str
    config: str  # 0x ABI-encoded GuardConfig the transaction sets (what owners review)
    diff: list[str]
    signatures: list[OwnerSignature] = []


def sync_transaction(
    chain_id: int, ref: SafeRef, want: GuardConfig, *, nonce: int, enable: bool
) -> SafeTx:
    set_config = call_data("setConfig(bytes)", ["bytes"], [want.encode()])
    if not enable:
        return SafeTx(
            chain_id=chain_id, safe=ref.address, to=ref.guard, data=set_config, nonce=nonce
        )
    enable_module = call_data("enableModule(address)", ["address"], [ref.guard])
    batch = encode_multisend([(ref.address, 0, enable_module), (ref.guard, 0, set_config)])
    return SafeTx(
        chain_id=chain_id,
        safe=ref.address,
        to=ref.multi_send,
        data=batch,
        operation=DELEGATECALL,
        nonce=nonce,
    )


def load_proposal(path: Path) -> SyncProposal | None:
    if not path.exists():
        return None
    try:
        proposal = SyncProposal.model_validate_json(path.read_text())
    except (ValidationError, ValueError) as exc:
        raise ConfigError(
            f"{path} is not a sync-guard proposal: {exc.errors()[0]['msg'] if isinstance(exc, ValidationError) else exc}"
        ) from exc
    if proposal.safe_tx.hash != proposal.safe_tx_hash:
        raise Refused(f"{path}: the transaction does not hash to its recorded hash (edited)")
    return proposal


def _write(path: Path, proposal: SyncProposal) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(proposal.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)


def propose(w3: Web3, ref: SafeRef, want: GuardConfig, path: Path) -> SyncProposal | None:
    """Write (or keep, with its signatures) the proposal that brings the guard to `want`;
    None, and no file, when the guard already holds it."""
    state = read_state(w3, ref)
    if state.config_hash == want.config_hash and state.module_enabled:
        if path.exists():
            path.unlink()
        return None
    tx = sync_transaction(
        w3.eth.chain_id, ref, want, nonce=state.nonce, enable=not state.module_enabled
    )
    old = load_proposal(path)
    signatures = old.signatures if old is not None and old.safe_tx_hash == tx.hash else []
    proposal = SyncProposal(
        safe_tx=tx,
        safe_tx_hash=tx.hash,
        config_hash=want.config_hash,
        config="0x" + want.encode().hex(),
        diff=config_diff(want, state.config) or ["+ enable the guard as a module"],
        signatures=signatures,
    )
    _write(path, proposal)
    return proposal


def approve(
    w3: Web3, ref: SafeRef, path: Path, owner: Any, want: GuardConfig | None = None
) -> tuple[SyncProposal, list[str], int]:
    """Add `owner`'s signature; (proposal, valid owners, threshold).

    An owner signs only a guard sync of this Safe at its current nonce: the transaction is
    made again from the configuration in the file (and must be `want`'s, the allowlist's,
    when given, as the CLI always gives it) and must equal the file's, so a proposal edited
    on its way between the owners (another target, an addOwner) is refused."""
    proposal = load_proposal(path)
    if proposal is None:
        raise ConfigError(
            f"no sync-guard proposal at {path}: run `defiagent safe sync-guard` first"
        )
    state = read_state(w3, ref)
    if owner.address.lower() not in {o.lower() for o in state.owners}:
        raise Refused(
            f"{owner.address} is not an owner of the Safe {ref.address}: it cannot approve"
        )
    try:
        proposed = GuardConfig.decode(bytes.fromhex(proposal.config.removeprefix("0x")))
    except Exception as exc:  # any decoding failure: not a configuration
        raise Refused(f"the proposal in {path} holds no readable guard configuration") from exc
    if want is not None and proposed.config_hash != want.config_hash:
        raise Refused(
            f"the proposal in {path} sets configuration {proposed.config_hash}, not the "
            f"allowlist's {want.config_hash}: propose again"
        )
    expected = sync_transaction(
        w3.eth.chain_id, ref, proposed, nonce=state.nonce, enable=not state.module_enabled
    )
    if proposal.safe_tx != expected:
        raise Refused(
            f"the proposal in {path} is not the transaction the allowlist calls for on this "
            f"Safe now (expected {expected.hash}, found {proposal.safe_tx_hash}): it was edited, "
            "or the allowlist or the Safe changed; propose again"
        )
    signature = proposal.safe_tx.sign(owner)
    kept = [s for s in proposal.signatures if s.owner.lower() != signature.owner.lower()]
    proposal = proposal.model_copy(
        update={"signatures": [*kept, signature], "diff": config_diff(proposed, state.config)}
    )
    _write(path, proposal)
    valid = proposal.safe_tx.valid_owners(proposal.signatures, state.owners)
    return proposal, valid, state.threshold


def execute(w3: Web3, ref: SafeRef, path: Path, payer: Any, want: GuardConfig) -> str:
    """Send the approved proposal; the transaction hash. Refused if stale or under threshold."""
    proposal = load_proposal(path)
    if proposal is None:
        raise ConfigError(
            f"no sync-guard proposal at {path}: run `defiagent safe sync-guard` first"
        )
    if proposal.config_hash != want.config_hash:
        raise Refused(
            f"the proposal sets configuration {proposal.config_hash}, but the allowlist now "
            f"needs {want.config_hash}: propose again"
        )
    state = read_state(w3, ref)
    if proposal.safe_tx.nonce != state.nonce:
        raise Refused(
            f"the proposal is for Safe nonce {proposal.safe_tx.nonce}, the Safe is at "
            f"{state.nonce}: propose again and collect the signatures again"
        )
    tx = proposal.safe_tx
    data = tx.exec_data(proposal.signatures, state.owners, state.threshold)
    receipt = send(w3, payer, ref.address, data)
    if read_state(w3, ref).config_hash != want.config_hash:
        raise Refused("the Safe transaction was mined but the guard does not hold the new rules")
    path.unlink(missing_ok=True)
    return "0x" + bytes(receipt["transactionHash"]).hex()


__all__ = ["CALL", "SyncProposal", "approve", "execute", "propose", "sync_transaction"]
