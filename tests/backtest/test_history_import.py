"""`market import`: candles from a documented CSV schema; each bad row is one sentence
naming its line, exit 2."""

from __future__ import annotations

import json

import pytest

from defiagent.cli.app import main
from defiagent.market.history import MarketHistory

BASE = "0x" + "11" * 20
QUOTE = "0x" + "22" * 20
POOL = "0x" + "33" * 20
HEADER = "timestamp,open,high,low,close,volume\n"


def _argv(csv, out):
    return [
        "market", "import", str(csv), "--out", str(out), "--chain-id", "31337",
        "--pool", POOL, "--base", BASE, "--quote", QUOTE, "--base-symbol", "DTKN",
        "--quote-symbol", "DUSD", "--quote-depth", "1000000", "--json",
    ]  # fmt: skip


def test_candles_become_a_pool_whose_spot_is_the_close(tmp_path, capsys):
    csv = tmp_path / "c.csv"
    csv.write_text(
        HEADER
        + "1700000000,0.50,0.52,0.49,0.51,1200\n"
        + "2023-11-14T22:14:20Z,0.51,0.53,0.50,0.525,900\n"
        + "\n"  # a blank line is skipped
        + "1700000100,0.525,0.53,0.47,0.48,3000\n"
    )
    assert main(_argv(csv, tmp_path / "h")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ticks"] == 3
    assert doc["source"] == "ohlcv"
    h = MarketHistory.load(tmp_path / "h")
    assert h.timestamps == [1700000000, 1700000060, 1700000100]
    series = h.pools[MarketHistory.load(tmp_path / "h").meta.pools[0].address]
    for i, close in enumerate((0.51, 0.525, 0.48)):
        pool = series.state(i)
        r_base, r_quote = pool.reserves_for(
            series.start.token0.address
            if series.start.token0.symbol == "DTKN"
            else series.start.token1.address
        )
        assert r_quote == 10**6 * 10**18  # constant depth on the quote side
        assert r_quote / r_base == pytest.approx(close, rel=1e-12)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("time,open,high,low,close,volume\n1,1,1,1,1,1\n", "line 1 of"),
        (HEADER + "1700000000,1,1,1,1\n", "line 2 of .* has 5 fields"),
        (HEADER + "1700000000,1,1,1,1,1\n1700000060,1,x,1,1,1\n", "line 3 of .* not a number"),
        (HEADER + "1700000000,1,1,1,1,1\n1700000060,1,1,-1,1,1\n", "line 3 of .* positive"),
        (HEADER + "1700000000,1,1,1,1,1\n1700000060,1,1,1,nan,1\n", "line 3 of .* positive"),
        (HEADER + "1700000000,1,1,1,1,1\n1700000060,1,2,1.5,1,1\n", "line 3 of .* do not bound"),
        (HEADER + "1700000000,1,1,1,1,1\n1700000000,1,1,1,1,1\n", "line 3 of .* not after"),
        (HEADER + "1700000000,1,1,1,1,1\n2023-11-14T22:14:20,1,1,1,1,1\n", "line 3 of .* timezone"),
        (HEADER + "1700000000,1,1,1,1,-5\n", "line 2 of .* volume"),
        (HEADER + "1700000000,1,1,1,1,1\n", "fewer than two candles"),
        ("", "is empty"),
    ],
)
def test_a_bad_row_is_one_sentence_naming_its_line(tmp_path, capsys, body, words):
    import re

    csv = tmp_path / "bad.csv"
    csv.write_text(body)
    assert main(_argv(csv, tmp_path / "h")) == 2
    err = capsys.readouterr().err
    assert re.search(words, err), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "h").exists()


def test_bad_options_are_refused(tmp_path, capsys):
    csv = tmp_path / "c.csv"
    csv.write_text(HEADER + "1700000000,1,1,1,1,1\n1700000060,1,1,1,1,1\n")
    argv = _argv(csv, tmp_path / "h")
    same = [a if a != QUOTE else BASE for a in argv]
    assert main(same) == 2
    assert "different tokens" in capsys.readouterr().err
    zero = [a if a != "1000000" else "0" for a in argv]
    assert main(zero) == 2
    assert "--quote-depth" in capsys.readouterr().err
    assert main([a if a != POOL else "0x12" for a in argv]) == 2
    assert "--pool" in capsys.readouterr().err
