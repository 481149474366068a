"""Any edit to an approved entry voids its approvals: the agent refuses to start."""

from __future__ import annotations

import pytest

from defiagent.allowlist.models import AllowlistEntry
from defiagent.allowlist.store import entry_path, load_active_allowlist
from defiagent.allowlist.tomlio import read_entry, to_toml_value, write_entry
from defiagent.allowlist.workflow import approve_entry
from defiagent.errors import Refused
from tests.allowlist.rich_entry import mutate, rich_entry, tamper_paths


@pytest.fixture
def approved(root, keys):
    entry = rich_entry(keys)
    path = entry_path(root, entry.chain_id, entry.address)
    write_entry(path, entry)
    for reviewer in keys.reviewers[:2]:
        approve_entry(path, reviewer, root=root)
    return path


def test_rich_entry_is_active_before_tampering(root, approved):
    active = load_active_allowlist(root, 31337)
    entry = read_entry(approved)
    assert active.get(entry.address) == entry
    assert len(entry.approvals) == 2


@pytest.mark.parametrize("path", tamper_paths(), ids=lambda p: ".".join(map(str, p)))
def test_tampering_with_any_field_is_caught(root, approved, path):
    original = read_entry(approved)
    data = original.model_dump(mode="json", exclude={"approvals"})
    data["revoked_reason"] = original.revoked_reason
    tampered = mutate(data, path)
    tampered["approvals"] = [a.model_dump(mode="json") for a in original.approvals]
    try:
        write_entry(approved, AllowlistEntry.model_validate(tampered))
    except ValueError:  # the edit breaks the schema: write it raw, as an attacker would
        import tomli_w

        approved.write_text(
            tomli_w.dumps(to_toml_value({k: v for k, v in tampered.items() if v is not None}))
        )
    if path == ("revoked",):
        # Setting revoked only narrows: the entry is simply no longer active.
        assert load_active_allowlist(root, 31337).get(original.address) is None
        return
    with pytest.raises(Refused) as info:
        load_active_allowlist(root, 31337)
    assert original.address in str(info.value) or approved.name in str(info.value)


def test_signature_by_non_reviewer_does_not_count(root, approved, keys):
    from defiagent.allowlist.approvals import sign_approval
    from defiagent.allowlist.reviewers import Reviewers

    entry = read_entry(approved)
    # An attacker who lists their own key in a reviewers file of their own...
    fake = Reviewers.model_validate(
        {"threshold": 1, "reviewers": [{"name": "eve", "address": keys.outsider.address}]}
    )
    forged = sign_approval(entry, keys.outsider, fake)
    write_entry(approved, entry.model_copy(update={"approvals": [forged]}))
    # ...still cannot activate the entry under the real reviewers file.
    with pytest.raises(Refused, match="not a listed reviewer"):
        load_active_allowlist(root, 31337)


def test_one_valid_approval_is_not_enough(root, keys):
    entry = rich_entry(keys)
    path = entry_path(root, entry.chain_id, entry.address)
    write_entry(path, entry)
    approve_entry(path, keys.reviewers[0], root=root)
    with pytest.raises(Refused, match="1 valid approval"):
        load_active_allowlist(root, 31337)


def test_same_reviewer_twice_counts_once(root, keys):
    entry = rich_entry(keys)
    path = entry_path(root, entry.chain_id, entry.address)
    write_entry(path, entry)
    first = approve_entry(path, keys.reviewers[0], root=root)
    again = approve_entry(path, keys.reviewers[0], root=root)
    assert len(again.valid) == 1
    assert first.reviewer == again.reviewer
    assert any("replaced" in d for d in again.dropped)


def test_reapproval_after_an_edit_drops_void_signatures(root, approved, keys):
    entry = read_entry(approved)
    write_entry(approved, entry.model_copy(update={"notes": "edited after approval"}))
    result = approve_entry(approved, keys.reviewers[2], root=root)
    assert len(result.dropped) == 2
    assert all("void" in d for d in result.dropped)
    assert result.valid == [keys.reviewers[2].address]
    assert not result.active


def test_entry_moved_to_another_address_is_refused(root, approved):
    other = approved.with_name("0x" + "ab" * 20 + ".toml")
    approved.rename(other)
    with pytest.raises(Refused):
        load_active_allowlist(root, 31337)


def test_reviewers_file_swap_is_refused_when_pinned(root, approved, keys):
    from defiagent.allowlist.reviewers import reviewers_sha256
    from tests.allowlist.support import write_reviewers

    pin = reviewers_sha256(root)
    assert load_active_allowlist(root, 31337, reviewers_sha256=pin).entries
    write_reviewers(root, [keys.outsider, keys.reviewers[0]], threshold=1)
    with pytest.raises(Refused, match="pinned"):
        load_active_allowlist(root, 31337, reviewers_sha256=pin)


def test_revoked_entry_is_never_active(root, approved):
    from defiagent.allowlist.workflow import revoke_entry

    revoke_entry(approved, "router exploited upstream")
    assert load_active_allowlist(root, 31337).entries == {}
    with pytest.raises(Refused, match="revoked"):
        approve_entry(approved, object(), root=root)


class MinimalSigner:
    """Only what the Signer protocol promises approve_entry: .address and sign_typed_data."""

    def __init__(self, account) -> None:
        self._account = account
        self.address = account.address

    def sign_typed_data(self, typed_data: dict) -> bytes:
        return bytes(self._account.sign_typed_data(full_message=typed_data).signature)


def test_any_signer_backend_can_approve_and_a_lying_one_is_refused(root, keys):
    entry = rich_entry(keys)
    path = entry_path(root, entry.chain_id, entry.address)
    write_entry(path, entry)
    approve_entry(path, MinimalSigner(keys.reviewers[0]), root=root)
    approve_entry(path, keys.reviewers[1], root=root)  # an eth-account LocalAccount
    assert load_active_allowlist(root, 31337).get(entry.address) is not None

    liar = MinimalSigner(keys.outsider)
    liar.address = keys.reviewers[2].address  # claims a reviewer's address, signs with another key
    with pytest.raises(Refused, match="recovers to"):
        approve_entry(path, liar, root=root)
