"""ERC-4626 vaults end to end on anvil: planner -> guard -> fork simulation -> outcome checks.

Real bytecode: OpenZeppelin 5.7.0's ERC4626 (DemoVault) and ERC20 (DemoToken) from npm,
compiled by solcjs, and two misbehaving vaults written for these tests
(tests/contracts/vaults/MisbehavingVaults.sol):
  SkimmingVault       a fee its previews do not mention: deposit mints skimBps fewer shares,
                      withdraw burns skimBps more;
  SelfInflatingVault  deposit first pulls a donation into the vault (the donation of an
                      inflation attack, ahead of the depositor, inside the same call).
Each is checked on both sides of the share tolerance (TOL bps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError
from web3 import Web3

from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.chain.anvil import Anvil
from defiagent.decisions import Decision
from defiagent.devchain.artifacts import SOL_DIR
from defiagent.devchain.deploy import deploy
from defiagent.execution.models import PlannedCall
from defiagent.execution.planner import Planner
from defiagent.guard.base import FeeQuote, GuardContext, RiskState
from defiagent.guard.guard import Guard
from defiagent.guard.registry import GUARD_RULES, RISK_RULES
from defiagent.guard.rules.intent_kind_allowed import (
    DEFAULT_KINDS,
    IntentKindAllowed,
    IntentKindConfig,
)
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot, TokenInfo
from defiagent.protocols.base import PlanContext, PlanningError, ProtocolAddresses
from defiagent.protocols.erc4626.adapter import Erc4626, vault_functions
from defiagent.protocols.erc4626.artifacts import DEMO_VAULT_SOL, compile_units
from defiagent.protocols.erc4626.devnet import deploy_vault
from defiagent.protocols.erc4626.intents import VaultDeposit, VaultWithdraw
from defiagent.protocols.erc4626.prices import share_prices
from defiagent.protocols.erc4626.settings import Erc4626Settings, VaultSpec
from defiagent.simulation import ForkManager, Simulator
from defiagent.simulation.checks import CheckContext, run_checks

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("erc4626")]

MISBEHAVING = Path(__file__).parents[1] / "contracts" / "vaults" / "MisbehavingVaults.sol"
ONE = 10**18
TOL = 100  # bps: the share tolerance these tests configure
SEED = 1_000 * ONE  # what the deployer deposits into each vault first
STRANGER = "0x000000000000000000000000000000000000bEEF"
ROUTER = "0x0000000000000000000000000000000000007001"  # unused by vault plans
WETH = "0x0000000000000000000000000000000000007002"


# ------------------------------------------------------------------ the chain


@dataclass
class World:
    w3: Web3
    deployer: str
    agent: Account
    dusd: str
    honest: str
    skim: str
    inflating: str
    arts: dict
    fork: ForkManager
    sim: Simulator
    allowlist: ActiveAllowlist
    settings: Erc4626Settings
    guard: Guard = field(init=False)

    def __post_init__(self) -> None:
        kinds = IntentKindConfig(allowed_kinds=[*DEFAULT_KINDS, "vault-deposit", "vault-withdraw"])
        # Every guard rule and risk limit, defaults but for the vault kinds enabled.
        rules = [
            IntentKindAllowed(kinds) if c is IntentKindAllowed else c()
            for c in (*GUARD_RULES, *RISK_RULES)
        ]
        self.guard = Guard(rules)

    def vault(self, address: str):
        name = {self.honest: "DemoVault", self.skim: "SkimmingVault"}.get(
            address, "SelfInflatingVault"
        )
        return self.w3.eth.contract(address=address, abi=self.arts[name].abi)

    def token(self):
        return self.w3.eth.contract(address=self.dusd, abi=self.arts["DemoToken"].abi)

    def transact(self, fn) -> None:
        receipt = self.w3.eth.wait_for_transaction_receipt(fn.transact({"from": self.deployer}))
        assert receipt["status"] == 1


@pytest.fixture(scope="module")
def arts():
    # One solcjs run for every contract here (OpenZeppelin's ERC4626 takes seconds).
    return compile_units((DEMO_VAULT_SOL, MISBEHAVING, SOL_DIR / "DemoToken.sol"))


@pytest.fixture(scope="module")
def world(tmp_path_factory, arts):
    with Anvil(log_dir=tmp_path_factory.mktemp("upstream")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        deployer = w3.eth.accounts[0]
        dusd = deploy(w3, arts["DemoToken"], "Demo USD", "DUSD", 10**27, sender=deployer)
        honest = deploy_vault(
            w3, dusd.address, deployer=deployer, seed_assets=SEED, artifact=arts["DemoVault"]
        )
        assert honest.symbol == "vDUSD"
        assert honest.seeded_assets == SEED
        others = []
        for name in ("SkimmingVault", "SelfInflatingVault"):
            vault = deploy(w3, arts[name], dusd.address, sender=deployer)
            for fn in (
                dusd.functions.approve(vault.address, 2 * SEED),  # seed, then the donations
                vault.functions.deposit(SEED, deployer),
            ):
                w3.eth.wait_for_transaction_receipt(fn.transact({"from": deployer}))
            others.append(vault.address)
        agent = Account.create()
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": deployer, "to": agent.address, "value": 10 * ONE})
        )
        w3.eth.wait_for_transaction_receipt(
            dusd.functions.transfer(agent.address, 10_000 * ONE).transact({"from": deployer})
        )

        def entry(address: str, name: str, role: Role, functions) -> AllowlistEntry:
            code = w3.eth.get_code(address)
            return AllowlistEntry(
                chain_id=31337,
                address=address,
                name=name,
                role=role,
                codehash=w3.keccak(code).to_0x_hex(),
                functions=list(functions),
            )

        token_scope = next(s for s in _erc20_scopes() if s.kind == "token")
        entries = [
            entry(dusd.address, "Demo USD", Role.TOKEN, token_scope.functions),
            entry(honest.vault, "Demo Vault DUSD", Role.SPENDER, vault_functions()),
            entry(others[0], "Skimming Vault", Role.SPENDER, vault_functions()),
            entry(others[1], "Self-inflating Vault", Role.SPENDER, vault_functions()),
        ]
        settings = Erc4626Settings(
            vaults=[
                VaultSpec(address=honest.vault, asset=dusd.address, name="vDUSD"),
                VaultSpec(address=others[0], asset=dusd.address, name="skVLT"),
                VaultSpec(address=others[1], asset=dusd.address, name="siVLT"),
            ]
        )
        with ForkManager(node.url, log_dir=tmp_path_factory.mktemp("fork")) as fork:
            yield World(
                w3=w3,
                deployer=deployer,
                agent=agent,
                dusd=dusd.address,
                honest=honest.vault,
                skim=others[0],
                inflating=others[1],
                arts=arts,
                fork=fork,
                sim=Simulator(fork),
                allowlist=ActiveAllowlist(chain_id=31337, entries={e.address: e for e in entries}),
                settings=settings,
            )


def _erc20_scopes():
    from defiagent.protocols.erc20.adapter import Erc20

    return Erc20().scopes()


# ------------------------------------------------------------------ the pipeline


@dataclass
class Result:
    stage: str  # "guard", "outcome" or "sent"
    calls: list[PlannedCall]
    decisions: list[Decision] = field(default_factory=list)
    deltas: dict[str, int] = field(default_factory=dict)  # the vault call's, on the fork

    @property
    def passed(self) -> bool:
        """Through the guard and the outcome checks (and sent, when asked)."""
        return self.stage in ("outcome", "sent") and not self.refused_by

    @property
    def refused_by(self) -> set[str]:
        return {v.rule for d in self.decisions for v in d.refusals}

    @property
    def reason(self) -> str:
        return "; ".join(d.reason() for d in self.decisions if not d.allowed)


def _snapshots(world: World) -> tuple[MarketSnapshot, PortfolioSnapshot]:
    w3, agent = world.w3, world.agent.address
    block = w3.eth.get_block("latest")
    token = world.token()
    market = MarketSnapshot(
        chain_id=31337,
        block_number=block["number"],
        block_timestamp=block["timestamp"],
        tokens={world.dusd: TokenInfo(address=world.dusd, symbol="DUSD", decimals=18)},
        numeraire=world.dusd,
    )
    vaults = [v.address for v in world.settings.vaults]
    portfolio = PortfolioSnapshot(
        owner=agent,
        block_number=block["number"],
        eth_balance=w3.eth.get_balance(agent),
        balances={world.dusd: token.functions.balanceOf(agent).call()},
        allowances={
            f"{world.dusd}:{v}": token.functions.allowance(agent, v).call() for v in vaults
        },
    )
    return market, portfolio


def _guard_context(
    world: World, market: MarketSnapshot, *, price_shares: bool = True
) -> GuardContext:
    prices = {world.dusd: 1 / ONE}  # 1 DUSD is the numeraire's unit
    # Vault shares priced at the vault's own rate: what the value caps and position limits
    # need to value a withdraw (shares out) and a deposit (shares in).
    if price_shares:
        prices.update(share_prices(world.w3, world.settings.vaults, prices))
    agent = world.agent.address
    holdings = {world.dusd: _dusd(world)} | {
        v: _shares(world, v) for v in prices if v != world.dusd
    }
    positions = {t: amount * prices[t] for t, amount in holdings.items()}
    return GuardContext(
        agent=world.agent.address,
        chain_id=31337,
        allowlist=world.allowlist,
        now=int(time.time()),
        block_number=market.block_number,
        block_timestamp=market.block_timestamp,
        codehashes={
            a: world.w3.keccak(world.w3.eth.get_code(a)).to_0x_hex()
            for a in world.allowlist.entries
        },
        market=market,
        prices=prices,
        strategy="test",
        intents_in_window=1,
        fees=FeeQuote(base_fee_per_gas=10**9, max_priority_fee_per_gas=10**9),
        risk=RiskState(
            value_now=sum(positions.values()) + world.w3.eth.get_balance(agent) / ONE * 2_000,
            loss_pct_in_window=0.0,
            drawdown_pct=0.0,
            position_values=positions,
        ),
    )


def run(
    world: World,
    intent=None,
    *,
    calls: list[PlannedCall] | None = None,
    tolerance: int = TOL,
    send: bool = False,
    price_shares: bool = True,
) -> Result:
    """Plan (unless `calls` are given), guard every call, simulate the plan on the fork,
    check every outcome; with `send`, sign each call with the agent's key and mine it."""
    market, portfolio = _snapshots(world)
    if calls is None:
        ctx = PlanContext(
            agent=world.agent.address,
            addresses=ProtocolAddresses(
                router=ROUTER,
                weth=WETH,
                sections={"erc4626": world.settings.model_dump(mode="json")},
            ),
        )
        # The agent's planner: the registry routes vault intents to the erc4626 adapter.
        calls = Planner(ctx.agent, ctx.addresses).plan(intent, market, portfolio)
    guard_ctx = _guard_context(world, market, price_shares=price_shares)
    decisions = [world.guard.decide(c, guard_ctx) for c in calls]
    if not all(d.allowed for d in decisions):
        return Result("guard", calls, decisions)
    outcomes = world.sim.simulate_sequence(calls)
    check_ctx = CheckContext(
        allowlist=world.allowlist,
        tokens=world.sim.token_meta([world.dusd, *world.allowlist.entries]),
        share_tolerance_bps=tolerance,
    )
    decisions = [run_checks(c, o, check_ctx) for c, o in zip(calls, outcomes, strict=True)]
    result = Result("outcome", calls, decisions, deltas=outcomes[-1].deltas)
    if not all(d.allowed for d in decisions) or not send:
        return result
    for c in calls:
        _sign_and_send(world, c)
    result.stage = "sent"
    return result


def _sign_and_send(world: World, call: PlannedCall) -> None:
    w3, key = world.w3, world.agent
    tx = {
        "to": call.target,
        "data": call.data,
        "value": call.value,
        "nonce": w3.eth.get_transaction_count(key.address),
        "chainId": 31337,
        "gas": 500_000,
        "maxFeePerGas": 10 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    raw = key.sign_transaction(tx).raw_transaction
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    assert receipt["status"] == 1, call.description


def _shares(world: World, vault: str) -> int:
    return world.vault(vault).functions.balanceOf(world.agent.address).call()


def _dusd(world: World) -> int:
    return world.token().functions.balanceOf(world.agent.address).call()


def _hold_shares(world: World, vault: str, assets: int) -> None:
    """Make sure the agent holds shares worth `assets` (tests may run in any order)."""
    worth = world.vault(vault).functions.convertToAssets(_shares(world, vault)).call()
    if worth < assets:
        r = run(world, VaultDeposit(vault=vault, assets=assets, min_shares=1), send=True)
        assert r.stage == "sent", r.reason


# ------------------------------------------------------------------ honest vault


def test_deposit_then_withdraw_end_to_end(world):
    vault = world.vault(world.honest)
    promised = vault.functions.previewDeposit(100 * ONE).call()
    shares0, dusd0 = _shares(world, world.honest), _dusd(world)

    deposit = VaultDeposit(vault=world.honest, assets=100 * ONE, min_shares=promised)
    r = run(world, deposit, send=True)
    assert r.stage == "sent", r.reason
    # The allowance was short: an approve of exactly the assets, then deposit to the agent.
    approve, call = r.calls
    assert approve.target == world.dusd
    assert approve.allowed_approvals == {f"{world.dusd}:{world.honest}": 100 * ONE}
    assert call.share_preview is not None
    assert call.share_preview.side == "mint"
    # What the fork measured is what the chain did.
    assert r.deltas[world.honest] == promised
    assert _shares(world, world.honest) - shares0 == promised
    assert dusd0 - _dusd(world) == 100 * ONE

    burn = vault.functions.previewWithdraw(40 * ONE).call()
    withdraw = VaultWithdraw(vault=world.honest, assets=40 * ONE, max_shares=burn)
    r = run(world, withdraw, send=True)
    assert r.stage == "sent", r.reason
    assert len(r.calls) == 1  # the agent's own shares: no approve
    assert r.deltas[world.honest] == -burn
    assert _shares(world, world.honest) - shares0 == promised - burn
    assert dusd0 - _dusd(world) == 60 * ONE


def test_intent_bounds_are_the_expected_deltas(world):
    """min_shares and max_shares bind on the fork: one share beyond what the vault gives."""
    _hold_shares(world, world.honest, 20 * ONE)
    vault = world.vault(world.honest)
    promised = vault.functions.previewDeposit(10 * ONE).call()
    greedy = VaultDeposit(vault=world.honest, assets=10 * ONE, min_shares=promised + 1)
    r = run(world, greedy)
    assert r.refused_by == {"deltas-within-intent"}, r.reason
    burn = vault.functions.previewWithdraw(10 * ONE).call()
    stingy = VaultWithdraw(vault=world.honest, assets=10 * ONE, max_shares=burn - 1)
    r = run(world, stingy)
    assert r.refused_by == {"deltas-within-intent"}, r.reason
    # An intent that needs no shares back is refused before anything runs.
    with pytest.raises(ValidationError):
        VaultDeposit(vault=world.honest, assets=10 * ONE, min_shares=0)


def test_foreign_receiver_and_owner_are_refused_by_the_guard(world):
    deposit = VaultDeposit(vault=world.honest, assets=ONE, min_shares=1, receiver=STRANGER)
    r = run(world, deposit)
    assert r.stage == "guard"
    assert "recipient-is-self" in r.refused_by
    assert f"receiver={STRANGER}" in r.reason
    withdraw = VaultWithdraw(vault=world.honest, assets=ONE, max_shares=2 * ONE, receiver=STRANGER)
    r = run(world, withdraw)
    assert r.stage == "guard"
    assert r.refused_by == {"recipient-is-self"}

    # Around it: a plan whose withdraw takes someone else's shares (owner), built by hand.
    _hold_shares(world, world.honest, 2 * ONE)
    honest = run(world, VaultWithdraw(vault=world.honest, assets=ONE, max_shares=2 * ONE))
    assert honest.passed, honest.reason
    data = honest.calls[0].data
    agent_word = world.agent.address[2:].lower().rjust(64, "0")
    assert data.endswith(agent_word)
    theft = honest.calls[0].model_copy(
        update={"data": data[:-64] + STRANGER[2:].lower().rjust(64, "0")}
    )
    r = run(world, calls=[theft])
    assert r.stage == "guard"
    assert r.refused_by == {"recipient-is-self"}
    assert f"owner={STRANGER}" in r.reason

    # Around it: an entry whose reviewer dropped the equals-self constraints still refuses a
    # foreign receiver (the argument is named like a recipient).
    loose = world.allowlist.entries[world.honest].model_copy(
        update={"functions": [f.model_copy(update={"constraints": []}) for f in vault_functions()]}
    )
    narrowed = world.allowlist.model_copy(
        update={"entries": {**world.allowlist.entries, world.honest: loose}}
    )
    original, world.allowlist = world.allowlist, narrowed
    try:
        r = run(world, deposit)
    finally:
        world.allowlist = original
    assert r.stage == "guard"
    assert "recipient-is-self" in r.refused_by


# ------------------------------------------------------------------ misbehaving vaults


def test_fee_the_previews_hide_is_refused_beyond_the_tolerance(world):
    skim = world.vault(world.skim)
    world.transact(skim.functions.setSkim(0))
    # Shares to withdraw later, deposited while the vault is honest.
    r = run(world, VaultDeposit(vault=world.skim, assets=900 * ONE, min_shares=1), send=True)
    assert r.stage == "sent", r.reason

    deposit = VaultDeposit(vault=world.skim, assets=100 * ONE, min_shares=1)
    withdraw = VaultWithdraw(vault=world.skim, assets=100 * ONE, max_shares=200 * ONE)
    world.transact(skim.functions.setSkim(TOL))  # at the edge: passes
    for intent in (deposit, withdraw):
        r = run(world, intent)
        assert r.passed, r.reason

    world.transact(skim.functions.setSkim(TOL + 1))  # one basis point beyond
    r = run(world, deposit)
    assert r.refused_by == {"shares-as-previewed"}, r.reason
    assert "previewDeposit promised 100 skVLT" in r.reason
    assert "101.00 bps fewer, beyond the 100 bps tolerance" in r.reason
    r = run(world, withdraw)
    assert r.refused_by == {"shares-as-previewed"}, r.reason
    assert "101.00 bps more" in r.reason
    # A looser tolerance, configured, lets the same deposit through.
    assert not run(world, deposit, tolerance=TOL + 1).refused_by

    # Around it: the same deposit planned without its preview is refused, not waved through.
    planned = run(world, deposit, tolerance=10_000).calls
    bare = [*planned[:-1], planned[-1].model_copy(update={"share_preview": None})]
    r = run(world, calls=bare)
    assert r.refused_by == {"shares-as-previewed"}, r.reason
    assert "carries no share preview" in r.reason
    # ...or with a preview that is not the vault's (a token answers no previewDeposit).
    wrong = planned[-1].share_preview.model_copy(update={"vault": world.dusd})
    r = run(world, calls=[*planned[:-1], planned[-1].model_copy(update={"share_preview": wrong})])
    assert "shares-as-previewed" in r.refused_by
    assert "could not be read on the fork" in r.reason
    world.transact(skim.functions.setSkim(0))


def _largest_passing_donation(supply: int, total: int, assets: int, tolerance: int) -> int:
    """OpenZeppelin's previewDeposit (no decimals offset): assets * (S + 1) / (A + 1), floored.
    The largest donation D with shares(A + D) * 10000 >= preview * (10000 - tolerance)."""
    preview = assets * (supply + 1) // (total + 1)
    lo, hi = 0, total * 10
    while lo < hi:
        mid = (lo + hi + 1) // 2
        minted = assets * (supply + 1) // (total + 1 + mid)
        if minted * 10_000 >= preview * (10_000 - tolerance):
            lo = mid
        else:
            hi = mid - 1
    return lo


def test_donation_inside_the_deposit_is_refused_beyond_the_tolerance(world):
    vault = world.vault(world.inflating)
    supply = vault.functions.totalSupply().call()
    total = vault.functions.totalAssets().call()
    assets = 100 * ONE
    edge = _largest_passing_donation(supply, total, assets, TOL)
    assert 0 < edge < total  # about 1% of the vault

    deposit = VaultDeposit(vault=world.inflating, assets=assets, min_shares=1)
    world.transact(vault.functions.setDonation(edge))
    r = run(world, deposit)
    assert r.passed, r.reason

    world.transact(vault.functions.setDonation(edge + 1))
    r = run(world, deposit)
    assert r.refused_by == {"shares-as-previewed"}, r.reason
    assert "beyond the 100 bps tolerance" in r.reason

    # A real front-run's size (a tenth of the vault): refused, whatever min_shares says.
    world.transact(vault.functions.setDonation(total // 10))
    r = run(world, deposit)
    assert r.refused_by == {"shares-as-previewed"}, r.reason
    world.transact(vault.functions.setDonation(0))
    assert not run(world, deposit).refused_by


# ------------------------------------------------------------------ planner, no chain


def test_planner_refuses_a_vault_it_does_not_know(world):
    ctx = PlanContext(
        agent=world.agent.address, addresses=ProtocolAddresses(router=ROUTER, weth=WETH)
    )
    market, portfolio = _snapshots(world)
    with pytest.raises(PlanningError, match=r"not configured in \[protocols.erc4626\]"):
        Erc4626().planner(ctx).plan(
            VaultDeposit(vault=world.honest, assets=ONE, min_shares=1), market, portfolio
        )
    # Enough allowance already: no approve, just the deposit.
    allowances = {f"{world.dusd}:{world.honest}": ONE}
    ctx = PlanContext(
        agent=ctx.agent,
        addresses=ProtocolAddresses(
            router=ROUTER, weth=WETH, sections={"erc4626": world.settings.model_dump(mode="json")}
        ),
    )
    calls = (
        Erc4626()
        .planner(ctx)
        .plan(
            VaultDeposit(vault=world.honest, assets=ONE, min_shares=1),
            market,
            portfolio.model_copy(update={"allowances": allowances}),
        )
    )
    assert [c.target for c in calls] == [world.honest]


def test_vault_settings_reach_the_registry(world):
    from defiagent.protocols import registry

    section = world.settings.model_dump(mode="json")
    addresses = ProtocolAddresses(router=ROUTER, weth=WETH, sections={"erc4626": section})
    vaults = [world.honest, world.skim, world.inflating]
    assert registry.route(VaultWithdraw(vault=world.honest, assets=1, max_shares=1)).name == (
        "erc4626"
    )
    # The agent reads the vaults' allowances and refuses to start unless each is allowlisted.
    assert [s for s in registry.spenders(addresses) if s in vaults] == vaults
    assert registry.contracts(addresses)["protocols.erc4626.vaults[1]"] == world.skim
    # What valuing shares needs: the vaults as holdings, priced at their own rate.
    adapter = Erc4626()
    assert list(adapter.tokens(addresses)) == vaults
    block = world.w3.eth.block_number
    priced = adapter.token_prices(world.w3, addresses, {world.dusd: 1 / ONE}, block=block)
    rate = world.vault(world.honest).functions.convertToAssets(ONE).call() / ONE
    assert priced[world.honest] == pytest.approx(rate / ONE)
    assert adapter.token_prices(world.w3, addresses, {}, block=block) == {}  # asset unpriced
    # A vault listed twice, or a misspelt key, is a config error, not ignored.
    twice = {"vaults": [section["vaults"][0], section["vaults"][0]]}
    with pytest.raises(ValueError, match="listed twice"):
        registry.validate_sections({"erc4626": twice})
    with pytest.raises(ValueError, match="vault"):
        registry.validate_sections({"erc4626": {"vault": []}})


def test_devnet_hook_deploys_a_seeded_vault_over_the_devnet_token(world, monkeypatch):
    from defiagent.protocols.base import DevnetDeployment
    from defiagent.protocols.erc4626 import artifacts

    # The DemoVault this module compiled already (the same source), not a second solcjs run.
    monkeypatch.setattr(artifacts, "demo_vault", lambda: world.arts["DemoVault"])
    tokens = DevnetDeployment(protocol="tokens", extra={"token_a": world.dusd})
    made = Erc4626().deploy_devnet(world.w3, world.deployer, {"tokens": tokens})
    assert made is not None
    (vault,) = made.contracts
    assert (vault.name, vault.scope) == ("Demo Vault DUSD", "vault")
    assert made.settings == {
        "vaults": [{"address": vault.address, "asset": world.dusd, "name": "Demo Vault DUSD"}]
    }
    Erc4626Settings.model_validate(made.settings)  # what agent.toml gets is valid
    onchain = world.w3.eth.contract(address=vault.address, abi=world.arts["DemoVault"].abi)
    assert onchain.functions.asset().call() == world.dusd
    assert onchain.functions.totalAssets().call() == 1_000 * ONE  # seeded
    # No token deployed before it: no vault, nothing half made.
    assert Erc4626().deploy_devnet(world.w3, world.deployer, {}) is None


def test_a_safe_batch_keeps_the_vault_calls_preview(world):
    from defiagent.safe.batch import SafeExecution
    from defiagent.safe.chain import SafeRef

    safe = Web3.to_checksum_address("0x0000000000000000000000000000000000005afe")
    ctx = PlanContext(
        agent=safe,
        addresses=ProtocolAddresses(
            router=ROUTER, weth=WETH, sections={"erc4626": world.settings.model_dump(mode="json")}
        ),
    )
    market, portfolio = _snapshots(world)
    calls = Planner(ctx.agent, ctx.addresses).plan(
        VaultDeposit(vault=world.honest, assets=ONE, min_shares=1),
        market,
        portfolio.model_copy(update={"owner": safe, "allowances": {}}),
    )
    assert len(calls) == 2  # approve, deposit
    ref = SafeRef(address=safe, guard=STRANGER, multi_send=WETH)
    execution = SafeExecution(ref=ref, agent_key=world.agent.address, check_allowlist=None)  # type: ignore[arg-type]
    wrapped = execution.wrap(calls)
    assert wrapped.share_preview == calls[-1].share_preview
    assert wrapped.owner == safe  # the shares measured are the Safe's


def test_unpriced_shares_are_refused_by_the_limits_that_value_them(world):
    """Without the vaults' share prices (the agent's prices hold only pool prices), a deposit
    cannot be sized against the position limits and a withdraw's spend cannot be valued:
    refused, never waved through."""
    deposit = VaultDeposit(vault=world.honest, assets=ONE, min_shares=1)
    r = run(world, deposit, price_shares=False)
    assert r.stage == "guard"
    assert "max-position" in r.refused_by
    withdraw = VaultWithdraw(vault=world.honest, assets=ONE, max_shares=2 * ONE)
    r = run(world, withdraw, price_shares=False)
    assert r.stage == "guard"
    assert "value-cap-per-tx" in r.refused_by
    assert f"no sane price for {world.honest}" in r.reason
