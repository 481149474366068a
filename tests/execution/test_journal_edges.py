"""The write-ahead journal, call by call: what it stores, what it refuses, who may read it.

The executor tests drive it through whole trades on anvil; these pin each method's contract
(every field round-trips, state moves only forward where it must, the in-flight nonce query
sees only in-flight entries of that sender), its file modes whatever the umask, the single
writer lock, and that a damaged journal refuses to start instead of starting over.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from defiagent.errors import InfraError, Refused
from defiagent.execution.journal import (
    FINAL,
    IN_FLIGHT,
    Attempt,
    AttemptKind,
    Journal,
    State,
)
from defiagent.execution.models import PlannedCall

AGENT = "0x00000000000000000000000000000000000a6E47"
OTHER = "0x0000000000000000000000000000000000000B0b"
TARGET = "0x0000000000000000000000000000000000007001"
BIG = 2**200  # fees are stored as text: larger than sqlite's 64-bit integers


def call(intent: str = "i1", *, selector: str = "0x38ed1739", sender: str = AGENT) -> PlannedCall:
    return PlannedCall(
        intent_id=intent,
        intent_kind="swap-exact-in",
        target=TARGET,
        data=selector + "00" * 32,
        value=7,
        sender=sender,
        allowed_approvals={f"{TARGET}:{TARGET}": 5},
        description="swap for the test",
    )


def attempt(key: str, seq: int = 0, *, nonce: int = 3, tx: str = "0xaa", **kw) -> Attempt:
    fields = {
        "key": key,
        "seq": seq,
        "kind": AttemptKind.ORIGINAL,
        "tx_hash": tx,
        "raw": "0x02f8deadbeef",
        "nonce": nonce,
        "gas": 210_000,
        "max_fee_per_gas": BIG,
        "max_priority_fee_per_gas": BIG - 1,
    } | kw
    return Attempt(**fields)


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "state" / "journal.sqlite") as j:
        yield j


def test_plan_stores_the_call_whole_and_only_once(journal):
    entry, created = journal.plan(call(), chain_id=31337)
    assert created is True
    assert entry.state == State.PLANNED
    assert entry.call == call()
    assert (entry.intent_id, entry.sender, entry.chain_id) == ("i1", AGENT, 31337)
    assert entry.nonce is None
    assert entry.tx_hash is None
    assert entry.created_at == entry.updated_at > 0
    again, created = journal.plan(call(), chain_id=31337)
    assert created is False
    assert again == entry
    assert journal.get("no such key") is None


def test_an_attempt_round_trips_every_field_and_signs_the_entry(journal):
    entry, _ = journal.plan(call(), chain_id=1)
    journal.add_attempt(attempt(entry.key, created_at=123.5))
    [stored] = journal.attempts(entry.key)
    assert stored == attempt(entry.key, created_at=123.5)
    signed = journal.get(entry.key)
    assert signed.state == State.SIGNED
    assert (signed.nonce, signed.tx_hash) == (3, "0xaa")
    assert signed.updated_at >= entry.updated_at


def test_an_attempt_without_a_time_gets_the_current_one(journal):
    entry, _ = journal.plan(call(), chain_id=1)
    journal.add_attempt(attempt(entry.key))
    assert journal.attempts(entry.key)[0].created_at > 1_600_000_000


def test_a_replacement_does_not_move_a_sent_entry_back_to_signed(journal):
    entry, _ = journal.plan(call(), chain_id=1)
    journal.add_attempt(attempt(entry.key))
    journal.set_state(entry.key, State.SENT)
    journal.add_attempt(attempt(entry.key, 1, tx="0xbb", kind=AttemptKind.REPLACEMENT))
    now = journal.get(entry.key)
    assert now.state == State.SENT
    assert now.tx_hash == "0xbb"
    assert [a.seq for a in journal.attempts(entry.key)] == [0, 1]


def test_an_attempt_for_an_unknown_entry_is_an_infrastructure_error(journal):
    with pytest.raises(InfraError, match="could not record a step"):
        journal.add_attempt(attempt("missing"))
    assert journal.attempts("missing") == []


def test_set_state_records_the_reason(journal):
    entry, _ = journal.plan(call(), chain_id=1)
    journal.set_state(entry.key, State.ABORTED, reason="the guard refused")
    now = journal.get(entry.key)
    assert now.state == State.ABORTED
    assert now.reason == "the guard refused"


def test_finish_marks_the_mined_attempt_and_replaces_the_others(journal):
    entry, _ = journal.plan(call(), chain_id=1)
    journal.add_attempt(attempt(entry.key, 0, tx="0xaa"))
    journal.add_attempt(attempt(entry.key, 1, tx="0xbb"))
    journal.finish(entry.key, State.CONFIRMED, tx_hash="0xaa", block_number=9, gas_used=100)
    done = journal.get(entry.key)
    assert (done.state, done.tx_hash, done.block_number, done.gas_used) == (
        State.CONFIRMED,
        "0xaa",
        9,
        100,
    )
    assert [a.state for a in journal.attempts(entry.key)] == ["mined", "replaced"]


def test_finish_without_a_hash_keeps_the_last_one_and_the_attempts(journal):
    entry, _ = journal.plan(call(), chain_id=1)
    journal.add_attempt(attempt(entry.key, 0, tx="0xaa"))
    journal.finish(entry.key, State.DROPPED, reason="nonce taken")
    done = journal.get(entry.key)
    assert (done.state, done.tx_hash, done.reason) == (State.DROPPED, "0xaa", "nonce taken")
    assert [a.state for a in journal.attempts(entry.key)] == ["pending"]


def test_entries_filter_and_order(journal):
    first, _ = journal.plan(call("a"), chain_id=1)
    second, _ = journal.plan(call("b"), chain_id=1)
    third, _ = journal.plan(call("c", selector="0x095ea7b3"), chain_id=1)
    journal.add_attempt(attempt(second.key))
    journal.set_state(third.key, State.FAILED)
    assert [e.key for e in journal.entries()] == [first.key, second.key, third.key]
    assert [e.key for e in journal.entries(IN_FLIGHT)] == [second.key]
    assert [e.key for e in journal.entries((State.PLANNED,))] == [first.key]
    assert [e.key for e in journal.entries(FINAL)] == [third.key]
    assert journal.entries(()) == journal.entries()


def test_for_intent_lists_its_calls_in_order(journal):
    approve, _ = journal.plan(call("x", selector="0x095ea7b3"), chain_id=1)
    swap, _ = journal.plan(call("x"), chain_id=1)
    journal.plan(call("y"), chain_id=1)
    assert [e.key for e in journal.for_intent("x")] == [approve.key, swap.key]
    assert journal.for_intent("z") == []


def test_highest_held_nonce_counts_only_in_flight_entries_of_that_sender(journal):
    assert journal.highest_held_nonce(AGENT) is None
    a, _ = journal.plan(call("a"), chain_id=1)
    assert journal.highest_held_nonce(AGENT) is None  # planned: holds no nonce
    journal.add_attempt(attempt(a.key, nonce=0))
    assert journal.highest_held_nonce(AGENT) == 0  # nonce 0 is a held nonce
    b, _ = journal.plan(call("b"), chain_id=1)
    journal.add_attempt(attempt(b.key, nonce=4))
    journal.set_state(b.key, State.SENT)
    assert journal.highest_held_nonce(AGENT) == 4
    journal.finish(b.key, State.CONFIRMED, tx_hash="0xaa")
    assert journal.highest_held_nonce(AGENT) == 0
    c, _ = journal.plan(call("c", sender=OTHER), chain_id=1)
    journal.add_attempt(attempt(c.key, nonce=50))
    assert journal.highest_held_nonce(AGENT) == 0
    assert journal.highest_held_nonce(OTHER) == 50


def test_a_failed_write_leaves_nothing_behind(journal):
    entry, _ = journal.plan(call(), chain_id=1)
    journal.add_attempt(attempt(entry.key, 0))
    with pytest.raises(InfraError):
        journal.add_attempt(attempt(entry.key, 0, tx="0xcc"))  # same (key, seq)
    assert journal.get(entry.key).tx_hash == "0xaa"
    assert len(journal.attempts(entry.key)) == 1


def test_entries_survive_a_reopen_and_another_thread_can_use_it(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path) as j:
        entry, _ = j.plan(call(), chain_id=1)
        j.add_attempt(attempt(entry.key))
    with Journal(path) as j:
        seen: list = []
        worker = threading.Thread(target=lambda: seen.append(j.get(entry.key)))
        worker.start()
        worker.join()
        assert seen[0].state == State.SIGNED
        assert j.attempts(entry.key)[0].max_fee_per_gas == BIG


def test_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "deep" / "er" / "journal.sqlite"
        with Journal(path) as j:
            j.plan(call(), chain_id=1)
            for name in ("journal.sqlite", "journal.sqlite.lock", "journal.sqlite-wal"):
                mode = stat.S_IMODE((path.parent / name).stat().st_mode)
                assert mode == 0o600, (name, oct(mode))
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old)


def test_files_made_readable_by_others_are_made_private_again(tmp_path):
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    for name in ("journal.sqlite", "journal.sqlite.lock"):
        os.chmod(tmp_path / name, 0o644)
    with Journal(path):
        for name in ("journal.sqlite", "journal.sqlite.lock"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_only_one_executor_at_a_time_and_the_lock_is_released(tmp_path):
    path = tmp_path / "journal.sqlite"
    first = Journal(path)
    with pytest.raises(InfraError, match="another executor is using the journal"):
        Journal(path)
    first.close()
    first.close()  # closing twice is harmless
    Journal(path).close()


def test_an_empty_journal_is_damaged_not_new(tmp_path):
    path = tmp_path / "journal.sqlite"
    path.touch()
    with pytest.raises(Refused) as err:
        Journal(path)
    assert f"the journal {path} is damaged (it is an empty file)" in str(err.value)
    assert path.stat().st_size == 0  # untouched
    Journal(tmp_path / "other.sqlite").close()  # and a new one still opens


def test_garbage_is_damaged_with_a_way_to_repair(tmp_path):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not a database, just some text long enough" * 100)
    with pytest.raises(Refused) as err:
        Journal(path)
    assert "is damaged (file is not a database)" in str(err.value)
    assert ".recover" in err.value.remedy
    # the lock was released: nothing else keeps the agent from opening a repaired journal
    path.unlink()
    Journal(path).close()


def test_a_journal_that_fails_its_integrity_check_is_damaged(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path) as j:
        for i in range(50):
            j.plan(call(f"intent-{i}"), chain_id=1)
    db = sqlite3.connect(path)
    db.execute("PRAGMA writable_schema=ON")  # forget an index: its pages become orphans
    db.execute("DELETE FROM sqlite_master WHERE name = 'entries_intent'")
    db.commit()
    db.close()
    with pytest.raises(Refused, match=r"is damaged \(integrity check: "):
        Journal(path)


def test_a_journal_in_an_unusable_place_is_an_infrastructure_error(tmp_path):
    folder = tmp_path / "journal.sqlite"
    folder.mkdir()
    with pytest.raises(InfraError, match="cannot be opened"):
        Journal(folder)
    parent_is_file = tmp_path / "file"
    parent_is_file.write_text("x")
    with pytest.raises((InfraError, OSError)):
        Journal(parent_is_file / "journal.sqlite")


def test_states_partition_into_in_flight_and_final():
    assert set(IN_FLIGHT) == {State.SIGNED, State.SENT}
    assert set(IN_FLIGHT).isdisjoint(FINAL)
    assert set(IN_FLIGHT) | set(FINAL) | {State.PLANNED} == set(State)


def test_journal_key_is_per_call(tmp_path):
    assert Path(tmp_path).exists()
    assert call().journal_key != call(selector="0x095ea7b3").journal_key


# --- an encrypted state dir: the call and the signed bytes are sealed, bound to their row ---


@pytest.fixture
def sealed_dir(tmp_path):
    from defiagent.state_crypto.active import register
    from defiagent.state_crypto.cipher import StateCipher, new_data_key

    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    cipher = StateCipher({"k1": new_data_key()}, "k1", source="test")
    register(folder, cipher)
    yield folder, cipher
    register(folder, None)


def raw_rows(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_sealed_columns_round_trip_and_hold_no_plaintext(sealed_dir):
    from defiagent.state_crypto.cipher import is_sealed, sealed_key_id

    folder, _ = sealed_dir
    path = folder / "journal.sqlite"
    with Journal(path) as j:
        entry, _ = j.plan(call(), chain_id=1)
        j.add_attempt(attempt(entry.key, 0))
        j.add_attempt(attempt(entry.key, 1, tx="0xbb"))
        assert j.get(entry.key).call == call()
        assert [a.raw for a in j.attempts(entry.key)] == ["0x02f8deadbeef"] * 2
    [(call_json,)] = raw_rows(path, "SELECT call_json FROM entries")
    raws = [r for (r,) in raw_rows(path, "SELECT raw FROM attempts ORDER BY seq")]
    for value in (call_json, *raws):
        assert is_sealed(value)
        assert sealed_key_id(value) == "k1"
    assert "swap for the test" not in call_json
    assert all("deadbeef" not in r for r in raws)


def test_a_sealed_value_moved_to_another_row_is_refused(sealed_dir):
    folder, _ = sealed_dir
    path = folder / "journal.sqlite"
    with Journal(path) as j:
        a, _ = j.plan(call("a"), chain_id=1)
        b, _ = j.plan(call("b"), chain_id=1)
        j.add_attempt(attempt(a.key, 0))
        j.add_attempt(attempt(a.key, 1, tx="0xbb"))
    db = sqlite3.connect(path)
    db.execute(
        "UPDATE entries SET call_json = (SELECT call_json FROM entries WHERE key = ?) "
        "WHERE key = ?",
        (a.key, b.key),
    )
    db.execute("UPDATE attempts SET raw = (SELECT raw FROM attempts WHERE seq = 0) WHERE seq = 1")
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.get(a.key).call == call("a")
        with pytest.raises(Refused, match=r"call of"):
            j.get(b.key)
        with pytest.raises(Refused, match=r"raw of"):
            j.attempts(a.key)


def test_a_sealed_journal_without_its_key_is_refused(sealed_dir, tmp_path):
    from defiagent.state_crypto.active import register

    folder, cipher = sealed_dir
    path = folder / "journal.sqlite"
    with Journal(path) as j:
        entry, _ = j.plan(call(), chain_id=1)
    register(folder, None)  # and there is no key file: the agent cannot read it
    with Journal(path) as j, pytest.raises(Refused):
        j.get(entry.key)
    register(folder, cipher)


def test_reseal_moves_every_value_to_the_new_key(sealed_dir):
    from defiagent.state_crypto.active import register
    from defiagent.state_crypto.cipher import StateCipher, new_data_key, sealed_key_id

    folder, old = sealed_dir
    path = folder / "journal.sqlite"
    with Journal(path) as j:
        a, _ = j.plan(call("a"), chain_id=1)
        b, _ = j.plan(call("b"), chain_id=1)
        for seq in range(3):
            j.add_attempt(attempt(a.key, seq, tx=f"0x{seq:02x}"))
        both = StateCipher({**old.export_keys(), "k2": new_data_key()}, "k2", source="test")
        assert j.reseal(both) == 2 + 3
        assert j.get(b.key).call == call("b")
    values = [v for (v,) in raw_rows(path, "SELECT call_json FROM entries")]
    values += [v for (v,) in raw_rows(path, "SELECT raw FROM attempts")]
    assert {sealed_key_id(v) for v in values} == {"k2"}
    only_new = StateCipher({"k2": both.export_keys()["k2"]}, "k2", source="test")
    register(folder, only_new)
    with Journal(path) as j:
        assert j.get(a.key).call == call("a")
        assert [x.tx_hash for x in j.attempts(a.key)] == ["0x00", "0x01", "0x02"]
        assert [x.raw for x in j.attempts(a.key)] == ["0x02f8deadbeef"] * 3
