"""Strategy pins: the operator signs each strategy's code and params; any change refuses."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyotp
import pytest
import tomli_w
from eth_account import Account

from defiagent.cli.app import main
from defiagent.config import parse_config
from defiagent.errors import ConfigError, Refused
from defiagent.operator import enrolment, second_factor
from defiagent.signing.keystore import KeystoreSigner, write_keystore
from defiagent.strategy.pins import (
    PIN_COMMAND,
    PinFile,
    code_digest,
    params_digest,
    pin_id,
    pin_strategies,
    read_pins,
    verify_pins,
    write_pins,
)
from tests.operator.support import Clock, audit_records, code_at

PASSWORD = "correct horse battery staple"
PASSWORD_ENV = "PIN_TEST_PASSWORD"
ROUTER = "0x" + "11" * 20
WETH = "0x" + "22" * 20

SDK_FILE = """\
from defiagent.strategy.sdk import Strategy


class Honest(Strategy):
    def on_tick(self, tick):
        return []
"""


# --- a workspace: two strategies, a model file, an operator key ------------------------


def new_keystore(path: Path) -> str:
    return write_keystore(path, bytes(Account.create().key), PASSWORD, light=True)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "strat.py").write_text(SDK_FILE)
    (tmp_path / "model.bin").write_bytes(bytes(range(256)) * 4)
    deep = tmp_path / "dirstrat" / "pkg" / "deep"
    deep.mkdir(parents=True)
    (tmp_path / "dirstrat" / "__main__.py").write_text("from pkg.deep import logic\n")
    (deep / "logic.py").write_text("THRESHOLD = 150\n\ndef decide(x):\n    return x > THRESHOLD\n")
    (deep / "weights.json").write_text('{"w": [1, 2, 3]}\n')
    # Python's own bytecode caches are skipped: written by the interpreter, not the author.
    cache = deep / "__pycache__"
    cache.mkdir()
    (cache / "logic.cpython-311.pyc").write_bytes(b"\x00bytecode")
    return tmp_path


@pytest.fixture
def operator(work: Path) -> tuple[Path, str]:
    path = work / "keys" / "operator.json"
    return path, new_keystore(path)


@pytest.fixture
def signer(operator) -> KeystoreSigner:
    return KeystoreSigner(operator[0], PASSWORD)


def config_data(operator_address: str, **overrides) -> dict:
    data = {
        "rpc_url": "http://127.0.0.1:8545",
        "chain_id": 31337,
        "state_dir": "state",
        "protocols": {"router": ROUTER, "weth": WETH},
        "signer": {"backend": "keystore", "path": "keys/agent.json"},
        "pin_signers": [operator_address],
        "strategies": [
            {
                "name": "honest",
                "path": "strat.py",
                "params": {"threshold_bps": 150, "window": 20, "pair": "DUSD/DTKN"},
                "files": ["model.bin"],
            },
            {"name": "deep", "path": "dirstrat", "params": {"mode": "calm"}},
        ],
    }
    data.update(overrides)
    return data


def make_cfg(work: Path, data: dict):
    return parse_config(data, source="the test config").resolved(work)


@pytest.fixture
def data(operator) -> dict:
    return config_data(operator[1])


@pytest.fixture
def cfg(work, data):
    return make_cfg(work, data)


@pytest.fixture
def pinned(cfg, signer) -> PinFile:
    pinfile = pin_strategies(cfg, signer)
    write_pins(cfg.pins_file, pinfile)
    return pinfile


def flip_byte(path: Path, index: int = 10) -> None:
    """Change exactly one byte (one bit of it) of a file."""
    raw = bytearray(path.read_bytes())
    raw[index] ^= 0x01
    path.write_bytes(bytes(raw))


def refusal(cfg) -> str:
    with pytest.raises(Refused) as info:
        verify_pins(cfg)
    return str(info.value)


def with_strategy(data: dict, name: str, **changes) -> dict:
    strategies = [dict(s, **changes) if s["name"] == name else s for s in data["strategies"]]
    return {**data, "strategies": strategies}


# --- the library -----------------------------------------------------------------------


def test_pin_then_verify_passes(work, cfg, pinned):
    ids = verify_pins(cfg)
    assert set(ids) == {"honest", "deep"}
    assert ids["honest"] == pin_id(pinned.pins["honest"])
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids.values())
    assert pinned.pins["honest"].source == f"path:{work / 'strat.py'}"
    # every file is pinned on its own, the model file too; the bytecode cache is not
    assert set(pinned.pins["honest"].file_digests) == {
        str(work / "strat.py"),
        str(work / "model.bin"),
    }
    assert set(pinned.pins["deep"].file_digests) == {
        str(work / "dirstrat" / "__main__.py"),
        str(work / "dirstrat" / "pkg" / "deep" / "logic.py"),
        str(work / "dirstrat" / "pkg" / "deep" / "weights.json"),
    }
    # a cache Python rewrites does not make the pin go stale
    (work / "dirstrat" / "pkg" / "deep" / "__pycache__" / "logic.cpython-311.pyc").write_bytes(
        b"other"
    )
    assert verify_pins(cfg) == ids


def test_pins_file_format(cfg, pinned, operator):
    doc = json.loads(Path(cfg.pins_file).read_text())
    assert set(doc) == {"version", "pins", "signer", "signature"}
    assert doc["version"] == 1
    assert doc["signer"] == operator[1]
    assert doc["signature"].startswith("0x")
    assert len(doc["signature"]) == 132
    honest = doc["pins"]["honest"]
    assert honest["kind"] == "path"
    assert honest["params"] == {"threshold_bps": 150, "window": 20, "pair": "DUSD/DTKN"}
    assert honest["params_sha256"] == params_digest(honest["params"])
    assert read_pins(cfg.pins_file) == pinned


def test_one_byte_change_of_the_code_file_refuses_naming_it(work, cfg, pinned):
    target = work / "strat.py"
    before = code_digest(cfg.strategies[0]).file_digests[str(target)]
    flip_byte(target)
    after = code_digest(cfg.strategies[0]).file_digests[str(target)]
    message = refusal(cfg)
    assert message.startswith(f"strategy honest: the code of {target} changed since it was pinned")
    assert f"sha256 {before[:12]}… now {after[:12]}…" in message
    assert "model.bin" not in message


def test_one_byte_change_deep_in_a_directory_strategy_refuses_naming_it(work, cfg, pinned):
    target = work / "dirstrat" / "pkg" / "deep" / "weights.json"
    flip_byte(target, 3)
    message = refusal(cfg)
    assert message.startswith(f"strategy deep: the code of {target} changed")
    assert "logic.py" not in message


def test_a_lone_pyc_outside_pycache_is_code(work, cfg, pinned):
    """Python imports a legacy sourceless .pyc: only __pycache__ is the interpreter's own."""
    stray = work / "dirstrat" / "pkg" / "helper.pyc"
    stray.write_bytes(b"\x00bytecode")
    assert f"{stray} was added" in refusal(cfg)


def test_a_file_added_or_removed_in_a_directory_strategy_refuses(work, cfg, pinned):
    extra = work / "dirstrat" / "pkg" / "sneaky.py"
    extra.write_text("import os\n")
    assert f"{extra} was added" in refusal(cfg)
    extra.unlink()
    assert verify_pins(cfg)
    (work / "dirstrat" / "pkg" / "deep" / "weights.json").unlink()
    assert "weights.json was removed" in refusal(cfg)


def test_a_changed_model_file_refuses(work, cfg, pinned):
    flip_byte(work / "model.bin", 700)
    message = refusal(cfg)
    assert message.startswith(f"strategy honest: the code of {work / 'model.bin'} changed")


def test_a_one_character_param_change_refuses_naming_the_key(work, data, pinned):
    cfg = make_cfg(
        work,
        with_strategy(
            data, "honest", params={**data["strategies"][0]["params"], "pair": "DUSD/DTKM"}
        ),
    )
    message = refusal(cfg)
    assert message == "strategy honest: its params changed since it was pinned: pair changed"


def test_added_and_removed_params_refuse(work, data, pinned):
    params = dict(data["strategies"][0]["params"])
    del params["window"]
    params["leverage"] = 3
    cfg = make_cfg(work, with_strategy(data, "honest", params=params))
    message = refusal(cfg)
    assert "leverage added" in message
    assert "window removed" in message
    assert "threshold_bps" not in message


def test_an_int_param_that_becomes_a_float_is_a_change(work, data, pinned):
    params = {**data["strategies"][0]["params"], "window": 20.0}
    cfg = make_cfg(work, with_strategy(data, "honest", params=params))
    assert refusal(cfg).endswith("window changed")


def test_params_digest_is_canonical():
    assert params_digest({"a": 1, "b": [1, 2]}) == params_digest({"b": [1, 2], "a": 1})
    assert params_digest({"a": 1}) != params_digest({"a": 1.0})
    assert params_digest({"a": 1}) != params_digest({"a": True})
    assert params_digest({"big": 2**200}) != params_digest({"big": float(2**200)})


def test_a_changed_source_path_refuses(work, data, pinned):
    shutil.copy(work / "strat.py", work / "clone.py")  # the same bytes, another file
    cfg = make_cfg(work, with_strategy(data, "honest", path="clone.py"))
    message = refusal(cfg)
    assert message.startswith("strategy honest: its source changed since it was pinned")
    assert f"pinned path:{work / 'strat.py'}, now path:{work / 'clone.py'}" in message


def test_signed_by_a_key_not_in_pin_signers_refuses(work, cfg, operator):
    stranger_path = work / "keys" / "stranger.json"
    stranger = new_keystore(stranger_path)
    # pinned under a config that trusts the stranger, verified under one that does not
    pinning = cfg.model_copy(update={"pin_signers": [stranger]})
    write_pins(cfg.pins_file, pin_strategies(pinning, KeystoreSigner(stranger_path, PASSWORD)))
    message = refusal(cfg)
    assert f"is signed by {stranger}, which is not one of pin_signers ({operator[1]})" in message


def test_pinning_with_a_key_not_in_pin_signers_is_refused(work, cfg):
    stranger_path = work / "keys" / "stranger.json"
    new_keystore(stranger_path)
    with pytest.raises(Refused, match="is not one of pin_signers"):
        pin_strategies(cfg, KeystoreSigner(stranger_path, PASSWORD))


def test_no_pin_signers_refuses(work, data, pinned):
    cfg = make_cfg(work, {**data, "pin_signers": []})
    assert refusal(cfg).startswith("no pin_signers are configured")


def test_a_pins_file_edited_by_hand_refuses(work, cfg, pinned):
    """The attacker changes the code and writes its new digest into the pins file."""
    target = work / "strat.py"
    target.write_text(SDK_FILE + "\nimport os  # exfiltrate\n")
    doc = json.loads(Path(cfg.pins_file).read_text())
    now = code_digest(cfg.strategies[0])
    doc["pins"]["honest"]["file_digests"] = now.file_digests
    doc["pins"]["honest"]["code_sha256"] = now.sha256
    Path(cfg.pins_file).write_text(json.dumps(doc))
    message = refusal(cfg)
    assert "was changed after it was signed" in message


def test_a_pins_file_with_a_digest_edited_refuses(cfg, pinned):
    doc = json.loads(Path(cfg.pins_file).read_text())
    digest = doc["pins"]["deep"]["params_sha256"]
    doc["pins"]["deep"]["params_sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    Path(cfg.pins_file).write_text(json.dumps(doc))
    assert "was changed after it was signed" in refusal(cfg)


def test_a_missing_pins_file_refuses_with_the_pin_command(cfg):
    message = refusal(cfg)
    assert f"the strategy pins file {cfg.pins_file} does not exist" in message
    assert f"run `{PIN_COMMAND}`" in message
    assert "defiagent strategy pin -c agent.toml --key KEYSTORE" in message


@pytest.mark.parametrize(
    "content",
    ["not json at all", "[]", '{"version": 1, "pins": {}}', '{"version": 7}'],
)
def test_a_garbage_pins_file_is_a_config_error(cfg, content):
    Path(cfg.pins_file).write_text(content)
    with pytest.raises(ConfigError, match="strategy pins file"):
        verify_pins(cfg)


def test_an_unpinned_new_strategy_refuses(work, data, pinned):
    (work / "new.py").write_text(SDK_FILE)
    strategies = [*data["strategies"], {"name": "newcomer", "path": "new.py"}]
    cfg = make_cfg(work, {**data, "strategies": strategies})
    message = refusal(cfg)
    assert message.startswith(f"strategy newcomer has no pin in {cfg.pins_file}")
    assert PIN_COMMAND in message


def test_pins_of_strategies_no_longer_configured_are_ignored(work, data, pinned):
    cfg = make_cfg(work, {**data, "strategies": data["strategies"][:1]})
    assert set(verify_pins(cfg)) == {"honest"}


def test_a_command_strategy_pins_its_executable_and_script(work, data, signer):
    (work / "run.sh").write_text("#!/bin/sh\nexec python3 strat.py\n")
    strategies = [{"name": "cmd", "command": ["sh", "run.sh", "--fast"], "params": {}}]
    cfg = make_cfg(work, {**data, "strategies": strategies})
    pinfile = pin_strategies(cfg, signer)
    write_pins(cfg.pins_file, pinfile)
    pin = pinfile.pins["cmd"]
    assert pin.argv == ["sh", str(work / "run.sh"), "--fast"]
    assert pin.source == f"command:sh {work / 'run.sh'} --fast"
    assert set(pin.file_digests) == {shutil.which("sh"), str(work / "run.sh")}
    assert verify_pins(cfg) == {"cmd": pin_id(pin)}
    flip_byte(work / "run.sh", 12)
    assert refusal(cfg).startswith(f"strategy cmd: the code of {work / 'run.sh'} changed")
    # another argv is another source
    cfg2 = make_cfg(work, {**data, "strategies": [dict(strategies[0], command=["sh", "run.sh"])]})
    assert "its source changed" in refusal(cfg2)


def test_a_symlink_leaving_a_directory_strategy_is_refused(work, cfg, signer):
    (work / "outside.txt").write_text("secret\n")
    os.symlink(work / "outside.txt", work / "dirstrat" / "pkg" / "escape.txt")
    with pytest.raises(Refused, match="is a symlink leaving"):
        pin_strategies(cfg, signer)


def test_a_symlink_inside_the_tree_is_pinned_by_its_target(work, cfg, signer):
    link = work / "dirstrat" / "pkg" / "current.py"
    os.symlink("deep/logic.py", link)
    write_pins(cfg.pins_file, pin_strategies(cfg, signer))
    assert verify_pins(cfg)
    link.unlink()
    os.symlink("deep/weights.json", link)
    assert f"the code of {link} changed" in refusal(cfg)


def test_a_special_file_in_a_directory_strategy_is_refused(work, cfg, signer):
    os.mkfifo(work / "dirstrat" / "pipe")
    with pytest.raises(Refused, match="is a special file"):
        pin_strategies(cfg, signer)


def test_a_missing_code_file_is_a_config_error(work, cfg, pinned):
    (work / "model.bin").unlink()
    with pytest.raises(ConfigError, match=r"strategy honest: the file .*model.bin does not exist"):
        verify_pins(cfg)


# --- the CLI ---------------------------------------------------------------------------


def write_config(work: Path, data: dict) -> Path:
    path = work / "agent.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([*argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli_env(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.delenv("DEFIAGENT_OTP_CODE", raising=False)


def pin_argv(config: Path, key: Path, *extra: str) -> list[str]:
    return [
        "strategy",
        "pin",
        "-c",
        str(config),
        "--key",
        str(key),
        "--password-env",
        PASSWORD_ENV,
        *extra,
    ]


def test_cli_pin_and_verify_exit_codes_and_json(work, data, operator, cli_env, capsys):
    config = write_config(work, data)
    code, out, err = run(capsys, *pin_argv(config, operator[0], "--json"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True
    assert doc["signer"] == operator[1]
    assert [r["name"] for r in doc["pins"]] == ["honest", "deep"]
    ids = {r["name"]: r["pin_id"] for r in doc["pins"]}
    assert PASSWORD not in out

    # the audit log records the pin: names, ids, signer; never the password
    records = [r for r in audit_records(work / "state") if r["kind"] == "strategy-pin"]
    assert len(records) == 1
    assert records[0]["payload"]["pins"] == ids
    assert records[0]["payload"]["signer"] == operator[1]
    assert PASSWORD not in (work / "state" / "audit.jsonl").read_text()

    code, out, err = run(capsys, "strategy", "verify", "-c", str(config), "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "ok": True,
        "pins_file": str(work / "strategy-pins.json"),
        "pins": ids,
    }

    code, out, _ = run(capsys, "strategy", "verify", "-c", str(config))
    assert code == 0
    assert "every strategy matches its signed pin" in out

    # re-pinning what did not change keeps the pin ids
    code, out, _ = run(capsys, *pin_argv(config, operator[0], "--json"))
    assert code == 0
    assert {r["name"]: r["pin_id"] for r in json.loads(out)["pins"]} == ids

    flip_byte(work / "strat.py")
    code, out, err = run(capsys, "strategy", "verify", "-c", str(config), "--json")
    assert code == 1
    error = json.loads(out)["error"]
    assert error["kind"] == "refused"
    assert error["exit_code"] == 1
    assert error["message"].startswith(f"strategy honest: the code of {work / 'strat.py'} changed")
    assert err.startswith("refused: strategy honest: the code of")
    verifies = [r for r in audit_records(work / "state") if r["kind"] == "strategy-verify"]
    assert [r["payload"]["ok"] for r in verifies] == [True, True, False]


def test_cli_verify_config_errors_exit_2(work, data, operator, cli_env, capsys):
    code, out, _ = run(capsys, "strategy", "verify", "-c", str(work / "nope.toml"), "--json")
    assert code == 2
    assert json.loads(out)["error"]["kind"] == "config"
    bad = config_data(operator[1], chain_id=0)
    code, _, err = run(capsys, "strategy", "verify", "-c", str(write_config(work, bad)))
    assert code == 2
    assert "chain_id" in err
    config = write_config(work, data)
    (work / "strategy-pins.json").write_text("{not json")
    code, out, _ = run(capsys, "strategy", "verify", "-c", str(config), "--json")
    assert code == 2
    assert "is not valid JSON" in json.loads(out)["error"]["message"]


def test_cli_verify_without_pins_says_how_to_pin(work, data, cli_env, capsys):
    config = write_config(work, data)
    code, _, err = run(capsys, "strategy", "verify", "-c", str(config))
    assert code == 1
    assert "defiagent strategy pin -c agent.toml --key KEYSTORE" in err
    assert not (work / "state").exists()  # verify never creates the state dir


def test_cli_pin_with_a_key_not_in_pin_signers_writes_nothing(work, data, cli_env, capsys):
    stranger = work / "keys" / "stranger.json"
    new_keystore(stranger)
    config = write_config(work, data)
    code, _, err = run(capsys, *pin_argv(config, stranger))
    assert code == 1
    assert "is not one of pin_signers" in err
    assert not (work / "strategy-pins.json").exists()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(second_factor, "now", fake)
    return fake


@pytest.fixture
def enrolled(work, clock, cli_env, monkeypatch, capsys) -> Path:
    """An operator enrolled in the config's state dir (its first code used at clock.t)."""
    state = work / "state"
    secret = pyotp.random_base32()
    monkeypatch.setattr(enrolment, "new_secret", lambda: secret)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", pyotp.TOTP(secret).at(clock.t))
    assert main(["operator", "enroll", "--state-dir", str(state), "--json"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("DEFIAGENT_OTP_CODE")
    return state


def test_cli_pin_needs_the_operator_code_when_enrolled(
    work, data, operator, enrolled, clock, monkeypatch, capsys
):
    config = write_config(work, data)
    code, _, err = run(capsys, *pin_argv(config, operator[0]))
    assert code == 1
    assert "needs the operator's current code" in err
    assert not (work / "strategy-pins.json").exists()

    clock.advance(30)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    code, out, err = run(capsys, *pin_argv(config, operator[0], "--json"))
    assert code == 0, err
    assert json.loads(out)["ok"] is True
    record = [r for r in audit_records(enrolled) if r["kind"] == "strategy-pin"][-1]
    assert record["payload"]["operator_code"] is True
    code, _, _ = run(capsys, "strategy", "verify", "-c", str(config))
    assert code == 0
