"""`defiagent backtest`: bad input is one sentence and exit 2, before any replay; the
content hash a recorded history is named by holds across a write and a load."""

from __future__ import annotations

import pytest
import tomli_w

from defiagent.backtest.synthetic import synthetic_config, synthetic_history
from defiagent.cli.app import main
from defiagent.market.history import MarketHistory, write_history
from tests.backtest.support_engine import history_rows


@pytest.fixture
def home(tmp_path):
    history = synthetic_history(40)
    written = write_history(tmp_path / "data", history.meta, history_rows(history))
    assert written.content_hash == history.content_hash
    assert MarketHistory.load(tmp_path / "data").content_hash == history.content_hash
    cfg = synthetic_config(tmp_path)
    raw = cfg.model_dump(mode="json", exclude_none=True)
    raw.pop("strategy", None)
    (tmp_path / "agent.toml").write_text(tomli_w.dumps(raw))
    return tmp_path


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--certify"], "--certify needs --key"),
        (["--key", "op.json"], "--key is only used with --certify"),
        (["--certify", "--key", "op.json", "--no-gates"], "--certify needs the gates"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler is only used with --sweep"),
        (["--from", "1000", "--to", "2000"], "no recorded tick lies in blocks 1000-2000"),
        (["--from", "120", "--to", "110"], "no recorded tick"),
        (["--strategy", "nope"], "no strategy named 'nope'"),
    ],
)
def test_bad_input_is_one_sentence_exit_2(home, capsys, extra, words):
    argv = ["backtest", "-c", str(home / "agent.toml"), "--data", str(home / "data"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_folder_that_is_not_a_history(home, capsys):
    (home / "empty").mkdir()
    for data, words in ((home / "empty", "has no meta.json"), (home / "nope", "is not a folder")):
        argv = ["backtest", "-c", str(home / "agent.toml"), "--data", str(data), "--json"]
        assert main(argv) == 2
        assert words in capsys.readouterr().err
