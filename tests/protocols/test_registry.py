"""The registry is the only place the core learns of protocols.

Adding a protocol touches its folder and one line of `defiagent/protocols/registry.py`: the
intent union, the planner's routes, the scopes reviewers approve, the config tables, the
quoting for the slippage bound and `defiagent protocols list` (and its docs table) all follow
from that line; the guard rules and their docs do not change.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from defiagent.agent import demo_allowlist, scopes
from defiagent.agent.devnet import DemoMarket
from defiagent.cli.protocols import markdown_table
from defiagent.devchain.deploy import UniswapV2Deployment
from defiagent.protocols import registry
from defiagent.protocols.base import ProtocolAdapter
from defiagent.strategy.intent_base import CORE_INTENT_MODELS, IntentBase
from defiagent.strategy.intents import INTENT_MODELS, Intent
from defiagent.vetting.npm_sources import npm_sources

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "defiagent"

# Core modules that still import a protocol folder directly, each for a reason; anything
# else in the core must go through the registry (or base/planning/scopes, the seam itself).
KNOWN_DIRECT = {
    # Uniswap V2 only by design: the backtest replays V2 pools' Sync history with exact fills.
    "defiagent/backtest/engine.py",
    # The honeypot round trip: Router02's probe (V2 pools) lives there; other protocols'
    # probes are their adapters' `round_trip` hooks (Uniswap V3's in its folder).
    "defiagent/simulation/round_trip.py",
    # A snapshot's pools are V2 pairs; their constant-product quotes live in the V2 folder.
    "defiagent/market/models.py",
    # Liquidity-change minimums are checked with V2 pair math.
    "defiagent/guard/rules/slippage_bound.py",
    # The remote-signer demo signs V2 swaps and approvals it encodes itself.
    "defiagent/signing/remote/demo.py",
    # The devnet's V3 trader (to move behind ProtocolAdapter.devnet_traders).
    "defiagent/devnet/movers.py",
}
SEAM = {"registry", "base", "planning", "scopes", "quoting"}


def kind_of(model: type[IntentBase]) -> str:
    return registry.kind_of(model)


def test_the_intent_union_is_the_core_s_kinds_and_the_registry_s():
    from_registry = [m for p in registry.PROTOCOLS for m in p.intent_models]
    assert set(INTENT_MODELS.values()) == set(CORE_INTENT_MODELS) | set(from_registry)
    assert list(INTENT_MODELS)[-1] == "raw-call"  # kept last, as it always was
    parse = TypeAdapter(Intent)
    for kind, model in INTENT_MODELS.items():
        schema = model.model_json_schema()
        assert schema["properties"]["kind"]["const"] == kind
    # Every intent model defined anywhere in the package is one of them.
    for module in PACKAGE.rglob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and stmt.target.id == "kind"
                    and isinstance(stmt.value, ast.Constant)
                    and "Literal" in ast.unparse(stmt.annotation)
                    and any("Intent" in ast.unparse(b) for b in node.bases)
                ):
                    assert stmt.value.value in INTENT_MODELS, (module, node.name)
    assert parse.validate_python({"kind": "wrap", "amount": 1}).kind == "wrap"


def test_every_kind_but_the_raw_call_has_exactly_one_route_per_venue():
    routes = registry.routes()
    for kind, model in INTENT_MODELS.items():
        served = [v for k, v in routes if k == kind]
        if kind == "raw-call":
            assert served == []  # planned verbatim by the core, refused by the guard
        elif registry.has_venue(model):
            assert "uniswap-v2" in served  # the default venue
            assert None not in served
        else:
            assert served == [None], kind
    for adapter in registry.PROTOCOLS:
        for kind in adapter.kinds:
            venue = adapter.name if registry.has_venue(INTENT_MODELS[kind]) else None
            assert routes[(kind, venue)] is adapter


def test_names_are_unique_and_every_adapter_is_complete():
    names = registry.names()
    assert len(names) == len(set(names))
    for adapter in registry.PROTOCOLS:
        assert isinstance(adapter, ProtocolAdapter)
        assert adapter.title
        kinds = [s.kind for s in adapter.scopes()]
        assert len(kinds) == len(set(kinds)), adapter.name


def test_the_demo_allowlist_and_the_scope_lists_come_from_the_registry():
    assert scopes.router_functions() == list(registry.scope("uniswap-v2", "router").functions)
    assert scopes.pair_functions() == list(registry.scope("uniswap-v2", "pair").functions)
    assert scopes.weth_functions() == list(registry.scope("weth", "weth").functions)
    assert scopes.token_functions() == list(registry.scope("erc20", "token").functions)
    a = [f"0x{n:040x}" for n in range(1, 8)]
    dex = UniswapV2Deployment(
        chain_id=1, deployer=a[0], factory=a[1], router=a[2], weth=a[3], token_a=a[4],
        token_b=a[5], pair=a[6],
    )  # fmt: skip
    market = DemoMarket(dex=dex, weth_pair=a[0])
    contracts = demo_allowlist.market_contracts(market)
    assert len(contracts) == 7
    for _, name, role, sources, functions in contracts:
        fits = [
            s for _, s in registry.scopes() if s.role == role and s.functions == tuple(functions)
        ]
        assert fits, name
        assert any(s.npm_source and sources == npm_sources(s.npm_source) for s in fits), name


def test_the_core_imports_protocol_folders_only_through_the_registry():
    direct: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("defiagent/protocols/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "defiagent.protocols":
                    names = [f"{node.module}.{a.name}" for a in node.names]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["defiagent", "protocols"] and parts[2:3] and parts[2] not in SEAM:
                    direct.setdefault(rel, []).append(name)
    assert set(direct) <= KNOWN_DIRECT, {k: v for k, v in direct.items() if k not in KNOWN_DIRECT}


def test_the_protocols_table_in_the_docs_matches_the_registry():
    text = (ROOT / "docs" / "protocols.md").read_text()
    table = text.split("<!-- protocols:begin -->\n", 1)[1].split("<!-- protocols:end -->", 1)[0]
    assert table.strip() == markdown_table().strip(), (
        "regenerate it: defiagent protocols list --markdown"
    )


def test_every_intent_kind_is_documented_for_strategy_authors():
    text = (ROOT / "docs" / "strategy-protocol.md").read_text()
    for kind in INTENT_MODELS:
        assert f"`{kind}`" in text, kind


TOY = textwrap.dedent(
    '''
    """A protocol that exists only in this test: one new intent kind, a swap venue."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict

    from defiagent.allowlist.models import Role
    from defiagent.protocols.base import ContractScope, ProtocolAdapter, ProtocolPlanner
    from defiagent.protocols.planning import call
    from defiagent.protocols.scopes import fn
    from defiagent.strategy.intent_base import IntentBase
    from defiagent.types import Address

    PING = "ping(address to,uint256 amountIn,uint256 amountOutMin)"

    class Ping(IntentBase):
        kind: Literal["toy-ping"] = "toy-ping"
        to: Address

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        hub: Address

    class ToyPlanner(ProtocolPlanner):
        def plan(self, intent, market, portfolio):
            hub = self.ctx.addresses.sections["toy"]["hub"]
            return [call(intent, self.agent, hub, "0x", description=f"toy {intent.kind}")]

    class Toy(ProtocolAdapter):
        name = "toy"
        title = "Toy"
        kinds = frozenset({"toy-ping", "swap-exact-in"})
        intent_models = (Ping,)
        Settings = Settings

        def planner(self, ctx):
            return ToyPlanner(ctx)

        def scopes(self):
            return (ContractScope(kind="hub", role=Role.OTHER, functions=(fn(PING),)),)

        def quote(self, request, market):
            return 4242
    '''
)

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from defiagent.protocols import registry
    before = set(registry.names())
    from toy_protocol import Toy
    registry.PROTOCOLS = (*registry.PROTOCOLS, Toy())  # the one registry line

    from pydantic import TypeAdapter
    from defiagent.cli.protocols import markdown_table
    from defiagent.cli.rules import markdown_table as rules_table
    from defiagent.config import ProtocolsConfig
    from defiagent.execution.planner import Planner
    from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
    from defiagent.strategy.intents import INTENT_MODELS, Intent, SwapExactIn

    A, B, HUB, AGENT = (f"0x{n:040x}" for n in (0xA, 0xB, 0x70, 0xA6E))
    assert "toy-ping" in INTENT_MODELS
    ping = TypeAdapter(Intent).validate_python({"kind": "toy-ping", "to": A})
    cfg = ProtocolsConfig(router=A, weth=B, toy={"hub": HUB})
    try:
        ProtocolsConfig(router=A, weth=B, toy={"hub": HUB, "oops": 1})
        raise SystemExit("a bad [protocols.toy] table was accepted")
    except ValueError:
        pass
    planner = Planner(AGENT, cfg.addresses())
    market = MarketSnapshot(chain_id=1, block_number=1, block_timestamp=1)
    portfolio = PortfolioSnapshot(owner=AGENT, block_number=1, eth_balance=0)
    (c,) = planner.plan(ping, market, portfolio)
    assert (c.target.lower(), c.description) == (HUB, "toy toy-ping")
    swap = SwapExactIn(token_in=A, token_out=B, amount_in=1, min_amount_out=1, venue="toy")
    (c,) = planner.plan(swap, market, portfolio)
    assert c.description == "toy swap-exact-in"
    default = SwapExactIn(token_in=A, token_out=B, amount_in=1, min_amount_out=1)
    assert planner.plan(default, market, portfolio)[-1].target.lower() == A  # V2 router
    hub = registry.scope("toy", "hub").functions[0]
    assert registry.quoter_for(hub).name == "toy"
    assert "(`toy`)" in markdown_table()
    print(rules_table())
    """
)


@pytest.mark.timeout(60)
def test_adding_a_protocol_is_its_folder_and_one_registry_line(tmp_path):
    (tmp_path / "toy_protocol.py").write_text(TOY)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from defiagent.cli.rules import markdown_table as rules_table

    assert done.stdout.strip() == rules_table().strip()  # the rules do not change
