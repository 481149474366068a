"""The strategy boundary on a real chain: what a strategy does to its copy of the snapshot,
to its own name, or to the agent's handling of one intent never reaches the guard, the
limits or the loop; a strategy that keeps failing is paused, then tried again."""

from __future__ import annotations

import json
import textwrap

import pytest

from defiagent.strategy.config import StrategyConfig
from defiagent.strategy.host import StrategyHost
from defiagent.strategy.in_process import InProcessStrategy
from defiagent.strategy.intents import SwapExactIn

pytestmark = pytest.mark.slow
E18 = 10**18


def nonce(cw3, signer) -> int:
    return cw3.eth.get_transaction_count(signer.address)


def test_a_strategy_editing_its_snapshot_does_not_edit_the_guards(start_agent, cw3, market, signer):
    """The old attack: lists and dicts inside a frozen model are mutable. The strategy
    inflates the reserves it sees so a swap with min-out 1 looks within the slippage bound;
    the guard reads the agent's own snapshot and refuses."""

    class Editor:
        name = "editor"

        def describe(self) -> str:
            return "edits its snapshot"

        def propose(self, snapshot, portfolio):
            for pool in snapshot.pools:
                object.__setattr__(pool, "reserve0", 1)
                object.__setattr__(pool, "reserve1", 1)
            snapshot.price_checks.clear()
            snapshot.tokens.clear()
            return [
                SwapExactIn(
                    token_in=market.dtkn,
                    token_out=market.dusd,
                    amount_in=1_000 * E18,
                    min_amount_out=1,
                    reason="min-out 1 against reserves it edited",
                )
            ]

    before = nonce(cw3, signer)
    runtime = start_agent([Editor()])
    report = runtime.agent.tick()
    (intent,) = report.intents
    assert intent.status == "refused"
    assert "slippage-bound" in {r.rule for r in intent.refusals}
    assert nonce(cw3, signer) == before
    # and the agent's own snapshot still has the real reserves
    m, _, _ = runtime.agent._observe()
    assert all(p.reserve0 > 1 for p in m.pools)


NAME_SHIFTER = textwrap.dedent(
    """
    import itertools
    from defiagent.strategy.sdk import Strategy, run

    class Shifter(Strategy):
        counter = itertools.count()

        def propose(self, market, portfolio):
            self.name = f"someone-{next(self.counter)}"   # changes nothing: never read
            base, quote = self.p["base"], self.p["quote"]
            out = market.quote_out([base, quote], 10**18)
            return [
                {"kind": "swap-exact-in", "token_in": base, "token_out": quote,
                 "amount_in": str(10**18), "min_amount_out": str(out * 99 // 100),
                 "reason": f"as {self.name}"}
                for _ in range(6)
            ]

    class Params:
        @staticmethod
        def model_validate(params):
            return params

    Shifter.Params = Params
    if __name__ == "__main__":
        run(Shifter)
    """
)


def test_limits_hold_for_a_strategy_that_renames_itself(start_agent, market, tmp_path):
    """Sandboxed: it calls itself something new on every tick and in every reason; the rate
    limit (10 per 60 s in the demo config) still counts all its intents under one name."""
    code = tmp_path / "shifter.py"
    code.write_text(NAME_SHIFTER)
    host = StrategyHost(
        StrategyConfig(
            name="shifter", path=code, params={"base": market.dtkn, "quote": market.dusd}
        )
    )
    runtime = start_agent([host])
    reports = [i for _ in range(2) for i in runtime.agent.tick().intents]
    assert len(reports) == 12
    assert {i.strategy for i in reports} == {"shifter"}
    limited = [i for i in reports if "intent-rate-limit" in {r.rule for r in i.refusals}]
    assert len(limited) == 2  # the 11th and 12th of the window
    assert reports.index(limited[0]) == 10


def test_a_name_that_changes_on_every_read_is_read_once(start_agent, market):
    """In process (tests only), the name is read once, when it is wrapped."""

    class Slippery:
        reads = 0

        @property
        def name(self):
            Slippery.reads += 1
            return f"slippery-{Slippery.reads}"

        def describe(self) -> str:
            return "slippery"

        def propose(self, snapshot, portfolio):
            return []

    wrapped = InProcessStrategy(Slippery())
    assert [wrapped.name, wrapped.name] == ["slippery-1", "slippery-1"]


def test_an_intent_the_agent_cannot_handle_is_refused_and_the_loop_goes_on(
    start_agent, cw3, market, signer, monkeypatch
):
    class Two:
        name = "two"

        def describe(self) -> str:
            return "two swaps"

        def propose(self, snapshot, portfolio):
            return [
                SwapExactIn(
                    token_in=market.dtkn,
                    token_out=market.dusd,
                    amount_in=amount,
                    min_amount_out=snapshot.quote_out([market.dtkn, market.dusd], amount)
                    * 99
                    // 100,
                    reason=f"swap {amount}",
                )
                for amount in (1_000 * E18, 999 * E18)
            ]

    runtime = start_agent([Two()])
    planner = runtime.agent.p.planner
    real_plan = planner.plan

    def plan(intent, *args, **kw):
        if intent.amount_in == 1_000 * E18:
            raise OverflowError("int too large to convert to float")
        return real_plan(intent, *args, **kw)

    monkeypatch.setattr(planner, "plan", plan)
    before = nonce(cw3, signer)
    report = runtime.agent.tick()
    broken, fine = report.intents
    assert (broken.status, broken.stage, broken.first_rule) == (
        "refused",
        "internal",
        "internal-error",
    )
    assert "OverflowError" in broken.refusals[0].reason
    assert fine.status == "executed"
    assert nonce(cw3, signer) == before + 2
    assert runtime.agent.tick().skipped is None  # and the next tick runs


def test_repeated_failures_pause_the_strategy_then_it_is_tried_again(start_agent):
    clock = [1_000_000.0]

    class Broken:
        name = "broken"
        calls = 0

        def describe(self) -> str:
            return "always raises"

        def propose(self, snapshot, portfolio):
            Broken.calls += 1
            raise RuntimeError("no model")

    runtime = start_agent([Broken()])
    agent = runtime.agent
    agent.p.clock = lambda: clock[0]
    limits = agent.p.strategies[0].limits
    for _ in range(limits.max_failures):
        (failed,) = agent.tick().intents
        assert failed.first_rule == "strategy-failed"
    assert "broken" in agent.suspended
    calls = Broken.calls
    assert agent.tick().intents == []  # paused: not even asked
    assert Broken.calls == calls
    clock[0] += limits.pause_seconds + 1
    (failed,) = agent.tick().intents  # asked again after the pause
    assert Broken.calls == calls + 1
    records = [json.loads(line) for line in runtime.audit_path.read_text().splitlines()]
    paused = [r for r in records if r["kind"] == "strategy-paused"]
    assert paused
    assert paused[0]["payload"]["rules"] == ["strategy-failed"]


FLOODER = textwrap.dedent(
    """
    from defiagent.strategy.sdk import Strategy, run

    class Flooder(Strategy):
        def propose(self, market, portfolio):
            base, quote = self.p["base"], self.p["quote"]
            out = market.quote_out([base, quote], 10**18)
            return [
                {"kind": "swap-exact-in", "token_in": base, "token_out": quote,
                 "amount_in": str(10**18), "min_amount_out": str(out * 99 // 100)}
                for _ in range(1000)
            ]

    class Params:
        @staticmethod
        def model_validate(params):
            return params

    Flooder.Params = Params
    if __name__ == "__main__":
        run(Flooder)
    """
)


def test_a_thousand_valid_intents_trip_the_kill_switch(start_agent, cw3, market, signer, tmp_path):
    code = tmp_path / "flooder.py"
    code.write_text(FLOODER)
    host = StrategyHost(
        StrategyConfig(
            name="flooder", path=code, params={"base": market.dtkn, "quote": market.dusd}
        )
    )
    before = nonce(cw3, signer)
    runtime = start_agent([host])
    report = runtime.agent.tick()
    # 50 read (its max_intents), 950 dropped unread: a flood; the switch trips before any
    # of the 50 is signed, and each is refused by it.
    assert len(report.intents) == host.limits.max_intents
    assert runtime.kill_switch.is_on()
    assert runtime.kill_switch.status().reason.startswith("flood: 950 intents")
    assert all(i.status == "refused" for i in report.intents)
    assert {"kill-switch-off"} <= {r.rule for i in report.intents for r in i.refusals}
    assert nonce(cw3, signer) == before
    records = [json.loads(line) for line in runtime.audit_path.read_text().splitlines()]
    assert [r["payload"]["trigger"] for r in records if r["kind"] == "auto-kill"] == ["flood"]
