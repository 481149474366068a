"""A stolen agent key against the on-chain guard: every forged call is mined and reverts in
the guard (real Safe 1.4.1 bytecode, real Uniswap V2, anvil); the allowed batch goes through."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector

from defiagent.agent.devnet import UNIT
from defiagent.safe import sync
from defiagent.safe.chain import read_state
from defiagent.safe.forge import send_forged
from defiagent.safe.multisend import encode_multisend
from defiagent.safe.runtime import wanted_config
from defiagent.safe.safe_tx import DELEGATECALL
from defiagent.safe.status import safe_status
from tests.safe.conftest import APPROVE_CAP

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("safe-guard")]

OUTSIDER = Account.create().address
MAX = 2**256 - 1


def data(signature: str, types: list[str], values: list) -> str:
    return (
        "0x" + (function_signature_to_4byte_selector(signature) + abi_encode(types, values)).hex()
    )


def approve(spender: str, amount: int) -> str:
    return data("approve(address,uint256)", ["address", "uint256"], [spender, amount])


def swap(amount_in: int, path: list[str], to: str, deadline: int) -> str:
    return data(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [amount_in, 1, path, to, deadline],
    )


def balance(cw3, token: str, who: str) -> int:
    call = data("balanceOf(address)", ["address"], [who])
    return int.from_bytes(cw3.eth.call({"to": token, "data": call}), "big")


@pytest.fixture
def forged(cw3, signer, deployment):
    def send(to, value, calldata, operation=0, key=None):
        return send_forged(cw3, key or signer, deployment.ref, to, value, calldata, operation)

    return send


def deadline(cw3) -> int:
    return cw3.eth.get_block("latest")["timestamp"] + 600


def test_allowed_batch_trades_in_one_transaction(cw3, market, deployment, forged):
    d, safe = market.dex, deployment.safe
    before_dusd, before_dtkn = balance(cw3, d.token_a, safe), balance(cw3, d.token_b, safe)
    batch = encode_multisend(
        [
            (d.token_a, 0, approve(d.router, 100 * UNIT)),
            (d.router, 0, swap(100 * UNIT, [d.token_a, d.token_b], safe, deadline(cw3))),
        ]
    )
    result = forged(deployment.infra.multi_send, 0, batch, DELEGATECALL)
    assert result.status == 1, result.reason
    assert balance(cw3, d.token_a, safe) == before_dusd - 100 * UNIT
    assert balance(cw3, d.token_b, safe) > before_dtkn


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("transfer-to-outsider", "FunctionNotAllowed"),
        ("approve-over-cap", "ArgumentRefused"),
        ("approve-at-cap-plus-one", "ArgumentRefused"),
        ("approve-unknown-spender", "ArgumentRefused"),
        ("swap-to-outsider", "ArgumentRefused"),
        ("swap-unknown-token-in-path", "ArgumentRefused"),
        ("swap-dirty-recipient-word", "ArgumentRefused"),
        ("unknown-target", "TargetNotAllowed"),
        ("safe-add-owner", "TargetNotAllowed"),
        ("safe-enable-module-in-batch", "TargetNotAllowed"),
        ("guard-set-agent", "TargetNotAllowed"),
        ("eth-to-outsider", "TargetNotAllowed"),
        ("delegatecall-elsewhere", "DelegatecallRefused"),
        ("batch-with-one-bad-call", "ArgumentRefused"),
        ("batch-nested-delegatecall", "DelegatecallRefused"),
        ("batch-truncated", "MalformedBatch"),
        ("value-to-non-payable", "ValueRefused"),
        ("operation-2", "OperationRefused"),
    ],
)
def test_forged_call_reverts_on_chain_in_the_guard(cw3, market, deployment, forged, case, error):
    d, safe, ms = market.dex, deployment.safe, deployment.infra.multi_send
    good_approve = (d.token_a, 0, approve(d.router, UNIT))
    forged_calls = {
        "transfer-to-outsider": (
            d.token_a,
            0,
            data("transfer(address,uint256)", ["address", "uint256"], [OUTSIDER, UNIT]),
            0,
        ),
        "approve-over-cap": (d.token_a, 0, approve(d.router, MAX), 0),
        "approve-at-cap-plus-one": (d.token_a, 0, approve(d.router, APPROVE_CAP + 1), 0),
        "approve-unknown-spender": (d.token_a, 0, approve(OUTSIDER, UNIT), 0),
        "swap-to-outsider": (
            d.router,
            0,
            swap(UNIT, [d.token_a, d.token_b], OUTSIDER, deadline(cw3)),
            0,
        ),
        "swap-unknown-token-in-path": (
            d.router,
            0,
            swap(UNIT, [d.token_a, OUTSIDER, d.token_b], safe, deadline(cw3)),
            0,
        ),
        # The Safe's address with a dirty high byte: a 0.6 router would mask it to the Safe,
        # and the guard compares the whole word, so it refuses rather than guess.
        "swap-dirty-recipient-word": (
            d.router,
            0,
            _dirty_recipient(swap(UNIT, [d.token_a, d.token_b], safe, deadline(cw3))),
            0,
        ),
        "unknown-target": (OUTSIDER, 0, approve(d.router, 1), 0),
        "safe-add-owner": (
            safe,
            0,
            data("addOwnerWithThreshold(address,uint256)", ["address", "uint256"], [OUTSIDER, 1]),
            0,
        ),
        "safe-enable-module-in-batch": (
            ms,
            0,
            encode_multisend(
                [good_approve, (safe, 0, data("enableModule(address)", ["address"], [OUTSIDER]))]
            ),
            DELEGATECALL,
        ),
        "guard-set-agent": (
            deployment.guard,
            0,
            data("setAgent(address)", ["address"], [OUTSIDER]),
            0,
        ),
        "eth-to-outsider": (OUTSIDER, UNIT // 10, "0x", 0),
        "delegatecall-elsewhere": (
            d.router,
            0,
            swap(UNIT, [d.token_a, d.token_b], safe, deadline(cw3)),
            DELEGATECALL,
        ),
        "batch-with-one-bad-call": (
            ms,
            0,
            encode_multisend([good_approve, (d.token_a, 0, approve(OUTSIDER, MAX))]),
            DELEGATECALL,
        ),
        "batch-nested-delegatecall": (
            ms,
            0,
            _nested_delegatecall(encode_multisend([good_approve])),
            DELEGATECALL,
        ),
        "batch-truncated": (ms, 0, _truncated(encode_multisend([good_approve])), DELEGATECALL),
        "value-to-non-payable": (d.token_a, 1, approve(d.router, 1), 0),
        "operation-2": (d.token_a, 0, approve(d.router, 1), 2),
    }
    to, value, calldata, operation = forged_calls[case]
    before = balance(cw3, d.token_a, safe), cw3.eth.get_balance(safe)
    result = forged(to, value, calldata, operation)
    assert result.mined, f"{case} was executed"
    assert result.status == 0, f"{case} was executed"
    assert result.error == error, result.reason
    assert (balance(cw3, d.token_a, safe), cw3.eth.get_balance(safe)) == before


def _dirty_recipient(calldata: str) -> str:
    raw = bytearray(bytes.fromhex(calldata[2:]))
    raw[4 + 32 * 3] = 0x01  # the top byte of the `to` word
    return "0x" + raw.hex()


def _nested_delegatecall(multisend: str) -> str:
    raw = bytearray(bytes.fromhex(multisend[2:]))
    raw[4 + 64] = 0x01  # the first entry's operation byte: DELEGATECALL
    return "0x" + raw.hex()


def _truncated(multisend: str) -> str:
    raw = bytearray(bytes.fromhex(multisend[2:]))
    length = int.from_bytes(raw[36:68], "big")
    raw[36:68] = (length + 1).to_bytes(32, "big")  # claims one byte more than there is
    return "0x" + raw.hex() + "00" * 31


def test_only_the_agent_key_can_call_execute(cw3, market, deployment, forged):
    stranger = Account.create()
    cw3.eth.send_transaction({"from": market.dex.deployer, "to": stranger.address, "value": UNIT})

    class Key:  # a LocalAccount with defiagent's signer shape
        address = stranger.address

        def sign_transaction(self, tx):
            signed = stranger.sign_transaction(tx)
            return type("S", (), {"raw": signed.raw_transaction, "hash": "0x" + signed.hash.hex()})

    result = forged(market.dex.token_a, 0, approve(market.dex.router, 1), key=Key())
    assert result.status == 0, result.reason
    assert result.error == "NotAgent", result.reason


def test_a_target_whose_code_changed_is_refused_on_chain(cw3, market, deployment, forged):
    token = market.dex.token_a
    code = cw3.eth.get_code(token)
    cw3.provider.make_request("anvil_setCode", [token, "0x" + code.hex() + "00"])
    try:
        result = forged(token, 0, approve(market.dex.router, 1))
        assert result.status == 0, result.reason
        assert result.error == "CodehashMismatch", result.reason
    finally:
        cw3.provider.make_request("anvil_setCode", [token, "0x" + code.hex()])
    assert forged(token, 0, approve(market.dex.router, 1)).status == 1


def test_guard_out_of_sync_is_reported_and_resynced_by_m_of_n(
    cw3, deployment, safe_allowlist, owners, signer, tmp_path
):
    want = wanted_config(safe_allowlist, deployment.infra.multi_send)
    status, _ = safe_status(cw3, deployment.ref, want, agent=signer.address)
    assert status.in_sync, status.problems
    # The allowlist revokes the DTKN token: the guard still allows it until the owners sync.
    dtkn = next(
        a for a, e in safe_allowlist.entries.items() if "DTKN" in e.name and "Pair" not in e.name
    )
    entries = dict(safe_allowlist.entries)
    entries[dtkn] = entries[dtkn].model_copy(update={"revoked": True})
    revoked = wanted_config(
        safe_allowlist.model_copy(update={"entries": entries}), deployment.infra.multi_send
    )
    status, _ = safe_status(cw3, deployment.ref, revoked, agent=signer.address)
    assert not status.in_sync
    assert any(line.startswith(f"- target {dtkn}") for line in status.diff), status.diff
    assert any(line == f"- token {dtkn}" for line in status.diff), status.diff
    out_of_sync_diff = status.diff
    # A wrong agent is a problem too.
    status, _ = safe_status(cw3, deployment.ref, want, agent=OUTSIDER)
    assert any("not the configured agent" in p for p in status.problems)

    path = tmp_path / "sync.json"
    proposal = sync.propose(cw3, deployment.ref, revoked, path)
    assert proposal is not None
    assert proposal.diff == out_of_sync_diff
    # One owner is not enough; a non-owner cannot approve; an edited proposal is void.
    sync.approve(cw3, deployment.ref, path, owners[0], revoked)
    with pytest.raises(Exception, match="1 valid owner signature"):
        sync.execute(cw3, deployment.ref, path, signer, revoked)
    with pytest.raises(Exception, match="not an owner"):
        sync.approve(cw3, deployment.ref, path, Account.create(), revoked)
    sync.approve(cw3, deployment.ref, path, owners[1], revoked)
    sync.execute(cw3, deployment.ref, path, signer, revoked)
    assert safe_status(cw3, deployment.ref, revoked, agent=signer.address)[0].in_sync
    # Back to the allowlist the other tests use.
    sync.propose(cw3, deployment.ref, want, path)
    for owner in owners:
        sync.approve(cw3, deployment.ref, path, owner, want)
    sync.execute(cw3, deployment.ref, path, signer, want)
    assert read_state(cw3, deployment.ref).config_hash == want.config_hash


def test_rotation_swaps_the_agent_key_and_the_old_one_is_refused(
    cw3, market, deployment, owners, signer, forged, tmp_path
):
    import secrets as pysecrets

    from defiagent.safe.admin import swap_agent
    from defiagent.signing.keystore import KeystoreSigner, write_keystore

    password = pysecrets.token_urlsafe(8)
    write_keystore(tmp_path / "new.json", bytes(Account.create().key), password, light=True)
    new_key = KeystoreSigner(tmp_path / "new.json", password)
    cw3.eth.send_transaction({"from": market.dex.deployer, "to": new_key.address, "value": UNIT})
    with pytest.raises(Exception, match="1 valid owner signature"):
        swap_agent(cw3, deployment.ref, new_key.address, owners=owners[:1], payer=signer)
    swap_agent(cw3, deployment.ref, new_key.address, owners=owners, payer=signer)
    ok = approve(market.dex.router, 1)
    assert forged(market.dex.token_a, 0, ok).error == "NotAgent"  # the old key
    assert forged(market.dex.token_a, 0, ok, key=new_key).status == 1
    swap_agent(cw3, deployment.ref, signer.address, owners=owners, payer=new_key)
    assert forged(market.dex.token_a, 0, ok).status == 1


def test_owners_never_sign_a_proposal_edited_on_its_way(
    cw3, deployment, safe_allowlist, owners, tmp_path
):
    """A proposal file rewritten to another transaction (its hash recomputed to match) is
    refused before an owner signs it; so is one for a configuration the allowlist does not
    give."""
    import json

    from defiagent.safe.safe_tx import call_data

    want = wanted_config(safe_allowlist, deployment.infra.multi_send)
    entries = dict(safe_allowlist.entries)
    first = next(iter(entries))
    entries[first] = entries[first].model_copy(update={"revoked": True})
    changed = wanted_config(
        safe_allowlist.model_copy(update={"entries": entries}), deployment.infra.multi_send
    )
    path = tmp_path / "sync.json"
    assert sync.propose(cw3, deployment.ref, changed, path) is not None
    doc = json.loads(path.read_text())
    evil = sync.SafeTx.model_validate(doc["safe_tx"]).model_copy(
        update={
            "to": deployment.safe,
            "data": call_data(
                "addOwnerWithThreshold(address,uint256)", ["address", "uint256"], [OUTSIDER, 1]
            ),
        }
    )
    doc["safe_tx"], doc["safe_tx_hash"] = evil.model_dump(mode="json"), evil.hash
    path.write_text(json.dumps(doc))
    with pytest.raises(Exception, match="not the transaction"):
        sync.approve(cw3, deployment.ref, path, owners[0])
    assert sync.propose(cw3, deployment.ref, changed, path) is not None
    with pytest.raises(Exception, match="not the allowlist's"):
        sync.approve(cw3, deployment.ref, path, owners[0], want)
    path.unlink()


def test_the_guard_refuses_a_configuration_that_targets_the_safe_or_itself(
    cw3, deployment, safe_allowlist, owners, signer, tmp_path
):
    """Even M owners cannot make the Safe or the guard a target for the agent's key."""
    want = wanted_config(safe_allowlist, deployment.infra.multi_send)
    for target in (deployment.safe, deployment.guard):
        pins = dict(want.pins) | {target: "0x" + "22" * 32}
        bad = want.model_copy(update={"pins": pins})
        path = tmp_path / "bad.json"
        sync.propose(cw3, deployment.ref, bad, path)
        for owner in owners:
            sync.approve(cw3, deployment.ref, path, owner, bad)
        with pytest.raises(Exception, match="revert"):
            sync.execute(cw3, deployment.ref, path, signer, bad)
        path.unlink()
    assert read_state(cw3, deployment.ref).config_hash == want.config_hash


def test_the_safetx_hash_is_the_safes_own(cw3, deployment):
    from defiagent.safe.chain import safe_contract
    from defiagent.safe.safe_tx import ZERO, SafeTx

    tx = SafeTx(
        chain_id=cw3.eth.chain_id,
        safe=deployment.safe,
        to=deployment.guard,
        data=approve(OUTSIDER, 7),
        operation=DELEGATECALL,
        nonce=41,
    )
    on_chain = (
        safe_contract(cw3, deployment.safe)
        .functions.getTransactionHash(
            tx.to, 0, bytes.fromhex(tx.data[2:]), DELEGATECALL, 0, 0, 0, ZERO, ZERO, 41
        )
        .call()
    )
    assert "0x" + bytes(on_chain).hex() == tx.hash
