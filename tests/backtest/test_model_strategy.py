"""The model-driven example strategy: trained on recorded history, run in its sandbox, pinned
with its model file, passing the gates; its over-tuned variant refused, the gate named."""

from __future__ import annotations

import hashlib
import json

import pytest
import tomli_w

from defiagent.backtest.engine import run_backtest
from defiagent.backtest.gates import GatesConfig, failed_gates, run_gates
from defiagent.backtest.gates.replay import replay_hooks
from defiagent.backtest.synthetic import (
    DTKN,
    DUSD,
    UNIT,
    synthetic_allowlist,
    synthetic_config,
    synthetic_history,
)
from defiagent.backtest.training import (
    ModelSpec,
    read_model,
    samples,
    spot_prices,
    train,
    write_model,
)
from defiagent.cli.app import main
from defiagent.errors import ConfigError, Refused
from defiagent.strategy.builtin.model_classifier import Model
from tests.backtest.gates_world import save

TICKS, TRAIN_END, WARMUP = 800, 320, 20


@pytest.fixture(scope="module")
def history():
    # A strongly mean-reverting market: there is something real to learn.
    return synthetic_history(TICKS, seed=3, reversion=0.5, volatility_bps=300)


def model_config(workdir, model_path, **params):
    return synthetic_config(
        workdir,
        backtest={"start_balances": {DUSD: 20_000, DTKN: 0, "ETH": 2}},
        market={"numeraire": DUSD, "twap_min_window_seconds": 60, "max_deviation_bps": 3_000},
        risk={
            "max_trades": {"max_trades": 10_000},
            "max_daily_loss": {"max_loss_pct": 50},
            "max_drawdown": {"max_drawdown_pct": 50},
            "loss_cooldown": {"enabled": False},
        },
        strategies=[
            {
                "name": "model",
                "builtin": "model-classifier",
                "files": [str(model_path)],
                # a loaded CI machine must not fail a tick by a timeout
                "limits": {"tick_timeout_seconds": 30, "start_timeout_seconds": 120},
                "params": {
                    "base": DTKN,
                    "quote": DUSD,
                    "model": str(model_path),
                    "trade_size_quote": str(900 * UNIT),
                    "min_confidence": 0.6,
                    **params,
                },
            }
        ],
    )


def test_training_uses_only_its_window_and_the_strategy_reads_the_same_features(history):
    prices = spot_prices(history, DTKN, DUSD)
    spec = ModelSpec(lookback=3)
    xs, ys = samples(prices, spec, 100, 200)
    assert len(xs) == len(ys) == 200 - 100 - 3 - 1  # features and label in [100, 200) only
    model = train(history, DTKN, DUSD, spec, start=100, end=200)
    assert model.trained_on["ticks"] == [100, 200]
    assert model.trained_on["data_hash"] == history.content_hash
    # Mean reversion: a rise in the last tick predicts a fall (a negative weight).
    assert model.coef[0] < 0
    strategy_model = Model(json.loads(model.model_dump_json()))
    assert 0 < strategy_model.p_up(xs[0]) < 1


def test_training_refuses_a_window_too_short_and_a_missing_pool(history):
    with pytest.raises(Refused, match="too little to train on"):
        train(history, DTKN, DUSD, ModelSpec(lookback=3), start=0, end=10)
    with pytest.raises(ConfigError, match="no pool"):
        spot_prices(history, DTKN, "0x" + "11" * 20)


def test_model_files_are_plain_numbers_and_damaged_ones_are_refused(tmp_path, history):
    path = tmp_path / "model.json"
    digest = write_model(path, train(history, DTKN, DUSD, ModelSpec(kind="tree"), end=300))
    assert len(digest) == 64
    assert read_model(path).nodes
    path.write_text('{"format": "pickle"}')
    with pytest.raises(ConfigError, match="is not a model file"):
        read_model(path)
    with pytest.raises(ValueError, match="defiagent-model/1"):
        Model({"format": "pickle"})
    looping = {
        "format": "defiagent-model/1",
        "spec": {"kind": "tree", "lookback": 1},
        "nodes": [[0, 0.0, 0, 0, 0.5]],  # a node that points at itself
    }
    with pytest.raises(ValueError, match="does not reach a leaf"):
        Model(looping).p_up([0.1])


def gates_for(cfg, history, **sections):
    result = run_backtest(
        cfg, history, start=TRAIN_END, warmup=WARMUP, allowlist=synthetic_allowlist()
    )
    evaluate, fit = replay_hooks(cfg, history, allowlist=synthetic_allowlist())
    assert fit is not None  # a model strategy is retrained on each walk-forward window
    verdicts = run_gates(
        result,
        start=TRAIN_END,
        end=TICKS,
        evaluate=evaluate,
        fit=fit,
        base_params=cfg.strategy_configs()[0].params,
        config=GatesConfig(
            **{
                "warmup": {"ticks": WARMUP, "compare_ticks": 60},
                "sensitivity": {"params": ["min_confidence"]},
                "walk_forward": {"folds": 3},
                **sections,
            }
        ),
    )
    return result, verdicts


@pytest.mark.slow
@pytest.mark.xdist_group("model-strategy")
def test_the_honest_model_passes_every_gate_in_its_sandbox(tmp_path, history):
    path = tmp_path / "model.json"
    write_model(path, train(history, DTKN, DUSD, ModelSpec(lookback=2), end=TRAIN_END))
    cfg = model_config(tmp_path, path)
    result, verdicts = gates_for(cfg, history)
    assert result.metrics.n_trades > 50
    assert result.metrics.total_return > 0
    assert not failed_gates(verdicts), [v.sentence for v in failed_gates(verdicts)]
    assert {v.gate for v in verdicts if v.judged} == {
        "deflated-sharpe",
        "warmup",
        "sensitivity",
        "walk-forward",
    }


@pytest.mark.slow
@pytest.mark.xdist_group("model-strategy")
def test_the_over_tuned_model_is_refused_by_walk_forward(tmp_path, history):
    """A full-depth tree on 8 lagged returns, trained on every tick it is then tested on:
    in sample it knows each next move, and its backtest shines; trained on each window
    alone, as the walk-forward gate does, it has learned nothing that carries over."""
    path = tmp_path / "overtuned.json"
    spec = ModelSpec(kind="tree", lookback=8, max_depth=0, min_leaf=1)
    write_model(path, train(history, DTKN, DUSD, spec))  # all of it: the test period too
    cfg = model_config(tmp_path, path, min_confidence=0.9)
    # (the replaying gates the honest model passes are left out here: the time goes to
    # the one that matters)
    result, verdicts = gates_for(
        cfg, history, warmup={"enabled": False}, sensitivity={"enabled": False}
    )
    assert result.metrics.total_return > 0.05  # the in-sample backtest looks good
    failed = {v.gate: v for v in failed_gates(verdicts)}
    assert "walk-forward" in failed, [v.sentence for v in verdicts]
    assert "efficiency" in failed["walk-forward"].sentence
    assert failed["walk-forward"].figure < 0.4


def test_strategy_train_writes_the_pinned_model_file(tmp_path, history, capsys):
    data = save(history, tmp_path / "history")
    model = tmp_path / "model.json"
    cfg = model_config(tmp_path, model).model_dump(mode="json", exclude_none=True)
    (tmp_path / "agent.toml").write_text(tomli_w.dumps(cfg))
    train_cmd = [
        "strategy", "train", "-c", str(tmp_path / "agent.toml"), "--data", str(data.path),
        "--to", str(history.blocks[TRAIN_END - 1]), "--lookback", "2", "--json",
    ]  # fmt: skip
    assert main(train_cmd) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert doc["trained_on"]["ticks"] == [0, TRAIN_END]
    assert read_model(model).spec.lookback == 2
    # The model's digest is what the strategy's pin holds for that file.
    from defiagent.config import load_config
    from defiagent.strategy.pins import build_pins

    pins = build_pins(load_config(tmp_path / "agent.toml"))
    assert doc["sha256"] in pins["model"].file_digests.values()

    # Bad input: one sentence, exit 2.
    assert main([*train_cmd[:-1], "--kind", "forest", "--json"]) == 2
    assert "--kind" in json.loads(capsys.readouterr().out)["error"]["message"]
    cfg["strategies"][0]["files"] = []
    (tmp_path / "agent.toml").write_text(tomli_w.dumps(cfg))
    assert main(train_cmd) == 2
    assert "is not one of its files" in json.loads(capsys.readouterr().out)["error"]["message"]
    cfg["strategies"][0]["params"]["model"] = "model.json"  # the sandbox runs from /
    (tmp_path / "agent.toml").write_text(tomli_w.dumps(cfg))
    assert main(train_cmd) == 2
    assert "absolute path" in json.loads(capsys.readouterr().out)["error"]["message"]
