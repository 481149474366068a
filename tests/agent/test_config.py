"""agent.toml: the example parses, the environment overrides it, bad values name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from defiagent.config import load_config
from defiagent.errors import ConfigError
from defiagent.guard.guard import Guard
from defiagent.guard.registry import build_rules
from defiagent.strategy.host import StrategyHost

EXAMPLE = Path(__file__).resolve().parents[2] / "agent.example.toml"


def test_the_example_config_is_valid_and_builds_every_part():
    cfg = load_config(EXAMPLE)
    assert cfg.chain_id == 1
    assert cfg.signer.backend == "ledger"
    assert cfg.state_dir.is_absolute()
    host = StrategyHost(cfg.strategy)  # the built-in, in its sandbox
    try:
        assert "mean-reversion" in host.start()
    finally:
        host.close()
    lines = Guard(build_rules(cfg.guard, cfg.risk)).explain()
    assert "MaxDailyLoss: pause all trading after 2% loss in 24h" in lines
    assert "PerTxValueCap: at most 1,000.00 (numeraire) per transaction" in lines


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("DEFIAGENT_RPC_URL", "https://rpc.example/v3/some-key")
    monkeypatch.setenv("DEFIAGENT_GUARD__PER_TX_VALUE_CAP__MAX_VALUE", "250")
    monkeypatch.setenv("DEFIAGENT_RISK__MAX_DAILY_LOSS__MAX_LOSS_PCT", "1.5")
    cfg = load_config(EXAMPLE)
    assert cfg.rpc_url == "https://rpc.example/v3/some-key"
    assert cfg.guard.per_tx_value_cap.max_value == 250
    assert cfg.guard.slippage.max_slippage_bps == 50  # untouched sections keep the file's
    assert cfg.risk.max_daily_loss.max_loss_pct == 1.5
    assert "some-key" not in str(cfg.redacted())  # the key never reaches a log


def test_bad_values_name_their_field(tmp_path, monkeypatch):
    text = EXAMPLE.read_text()
    cases = {
        "max_slippage_bps = 50": ("max_slippage_bps = 99999", "guard.slippage.max_slippage_bps"),
        'backend = "ledger"': ('backend = "floppy"', "signer"),
        "chain_id = 1\n": ("chain_id = 0\n", "chain_id"),
        "[guard.fee_cap]": ("[guard.fee_caps]", "guard.fee_caps"),
    }
    for old, (new, field) in cases.items():
        path = tmp_path / "agent.toml"
        path.write_text(text.replace(old, new, 1))
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_config(path)
    monkeypatch.setenv("DEFIAGENT_TICK_SECONDS", "soon")
    with pytest.raises(ConfigError, match="tick_seconds"):
        load_config(EXAMPLE)


def test_a_secret_in_the_signer_table_is_refused(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(EXAMPLE.read_text() + 'password = "hunter2"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "hunter2" not in str(err.value)
