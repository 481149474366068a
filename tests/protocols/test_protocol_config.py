"""[protocols]: the keys of old, and one table per registered protocol with settings; a key
or table the registry does not know is refused with a sentence naming it (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from defiagent.config import load_config
from defiagent.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "agent.example.toml"


def config_with(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(EXAMPLE.read_text().replace("[protocols]", "[protocols]\n" + extra, 1))
    return path


def test_the_keys_of_old_still_make_the_planner_s_addresses(tmp_path):
    cfg = load_config(config_with(tmp_path, ""))
    addresses = cfg.protocols.addresses()
    assert addresses.router == cfg.protocols.router
    assert addresses.weth == cfg.protocols.weth


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ('routr = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"', "protocols.routr is neither"),
        ('sushiswap = { router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D" }', "sushiswap"),
        ("weth9 = {}", "[protocols.weth9] is not a protocol with settings"),
    ],
)
def test_an_unknown_key_or_table_is_refused_by_name(tmp_path, extra, says):
    with pytest.raises(ConfigError) as err:
        load_config(config_with(tmp_path, extra))
    assert says in err.value.message
    assert "\n" not in err.value.message
