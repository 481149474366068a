"""The Grafana dashboard against a real Prometheus scraping a running agent.

The agent trades on a local chain (a buy, a refused theft, a take-profit exit) while
Debian's Prometheus 2.42 scrapes its /metrics every second; then every query of the
dashboard is evaluated through Prometheus' HTTP API, with the dashboard's variables
substituted as Grafana would, and must return data for its panel. `promtool check metrics`
lints the exposition.

Needs Debian's prometheus (scripts/bootstrap installs it). Missing, the test fails rather
than skips, unless DEFIAGENT_NO_PROMETHEUS is set (a machine that opted out in bootstrap).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import defiagent.monitoring
from defiagent.agent.devnet import UNIT, fund
from defiagent.chain.anvil import free_port
from defiagent.devchain.deploy import swap_exact_in
from defiagent.guard.registry import EXIT_RULES
from defiagent.strategy.intents import SwapExactIn

pytestmark = pytest.mark.slow

DASHBOARD = Path(defiagent.monitoring.__file__).parent / "grafana" / "defiagent-dashboard.json"
JOB = "defiagent"  # the job name docs/monitoring.md tells operators to use
PUMPER = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"  # anvil's dev account 9
# Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape interval) with
# the data source's scrape interval (15s unless set): at least 1m, which here covers the
# whole run. $__interval is the dashboard's step; 15s is what a short time range gives.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
# Panels over counters: the agent traded, refused, simulated, exited, alerted and spent gas
# while Prometheus watched, so each shows a non-zero value, not only an empty-looking zero.
COUNTERS = re.compile(r"\b(rate|increase)\(")


# --- Prometheus ---------------------------------------------------------------------------


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"{name} is not installed: run scripts/bootstrap (it installs Debian's prometheus "
        "package for this test), or `apt-get install prometheus`; "
        "set DEFIAGENT_NO_PROMETHEUS=1 to skip this test"
    )


def prometheus_tools() -> dict[str, str]:
    if os.environ.get("DEFIAGENT_NO_PROMETHEUS"):
        pytest.skip("DEFIAGENT_NO_PROMETHEUS is set")
    return {"prometheus": _binary("prometheus"), "promtool": _binary("promtool")}


class Prometheus:
    """One Prometheus server on 127.0.0.1 scraping `target` every second, in `workdir`."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.promtool = ""
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = target
        self.log = workdir / "prometheus.log"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    static_configs:\n"
            f'      - targets: ["{target}"]\n'
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--web.console.templates={workdir / 'consoles'}",
                    f"--web.console.libraries={workdir / 'console_libraries'}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback)
                doc = json.load(resp)
        except urllib.error.HTTPError as exc:  # a bad query: Prometheus says why in JSON
            doc = json.load(exc)
        assert doc["status"] == "success", f"{path} {params}: {doc}"
        return doc["data"]

    def wait_until(self, what: str, ready, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited ({self.proc.returncode}):\n{self.logs()}")
            try:
                if ready():
                    return
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus: {what} within {timeout}s:\n{self.logs()}")
            time.sleep(0.1)

    def target_up(self) -> bool:
        targets = self.api("targets", state="active")["activeTargets"]
        ours = [t for t in targets if t["labels"].get("instance") == self.target]
        return bool(ours) and ours[0]["health"] == "up"

    def last_scrape(self) -> float:
        got = self.api("query", query=f'timestamp(up{{job="{JOB}"}})')["result"]
        return float(got[0]["value"][1]) if got else 0.0

    def wait_for_scrape(self) -> None:
        """Until Prometheus has scraped the agent as it is now."""
        now = time.time()
        self.wait_until("a scrape of the agent", lambda: self.last_scrape() > now, timeout=10)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A Prometheus scraping the port the agent will serve its metrics on. Requested before
    the chain: it takes about 5s to hand its first targets to the scraper, meanwhile the
    market is deployed."""
    tools = prometheus_tools()
    server = Prometheus(
        tools["prometheus"], tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{free_port()}"
    )
    server.promtool = tools["promtool"]
    try:
        yield server
    finally:
        server.stop()


# --- The dashboard --------------------------------------------------------------------------


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, inside rows too."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for target in p.get("targets", []):
                out.append((p["title"], target["expr"]))
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's $name, ${name} and [[name]] forms; an unknown variable fails the test."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        assert name in variables, f"dashboard variable ${name} has no value in this test: {expr}"
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


def promql_regex(value: str) -> str:
    """A literal value as Grafana puts a selected variable into a =~ matcher's string."""
    return re.escape(value).replace("\\", "\\\\")


# --- The agent ------------------------------------------------------------------------------


def swap(m, snapshot, amount, *, recipient=None):
    extra = {"recipient": recipient} if recipient else {}
    return SwapExactIn(
        token_in=m.dusd,
        token_out=m.dtkn,
        amount_in=amount,
        min_amount_out=snapshot.quote_out([m.dusd, m.dtkn], amount) * 995 // 1000,
        reason="test: buy DTKN",
        **extra,
    )


class Buyer:
    """Buys DTKN with DUSD on its first two ticks."""

    name = "buyer"

    def __init__(self, market):
        self.market, self.left = market, 2

    def describe(self) -> str:
        return "buyer (test)"

    def propose(self, snapshot, portfolio):
        if self.left <= 0:
            return []
        self.left -= 1
        return [swap(self.market, snapshot, 300 * UNIT)]


class Thief:
    """Asks, every tick, for a swap paying someone else: the guard refuses it."""

    name = "thief"

    def __init__(self, market):
        self.market = market

    def describe(self) -> str:
        return "thief (test)"

    def propose(self, snapshot, portfolio):
        return [swap(self.market, snapshot, 100 * UNIT, recipient=PUMPER)]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
        return resp.read().decode()


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    prometheus, start_agent, cw3, market
):
    prom, instance = prometheus, prometheus.target
    started = time.monotonic()

    def configure(raw):
        raw["metrics"] = {"port": int(instance.rsplit(":", 1)[1])}
        raw["market"]["max_deviation_bps"] = 9_000  # the pump below must not be refused
        raw["risk"]["take_profit"] = {"take_profit_pct": 5}
        return raw

    runtime = start_agent([Buyer(market), Thief(market)], configure=configure)
    agent_ready = time.monotonic()
    prom.wait_until("the agent as an up target", prom.target_up)
    up = time.monotonic()

    # The agent works while Prometheus watches: a scrape after every tick, so each counter
    # has samples before and after it moved.
    statuses = []
    for tick in range(4):
        if tick == 2:  # another trader buys DTKN: its price rises past the take-profit
            fund(cw3, market, PUMPER, eth=UNIT, dusd=200_000 * UNIT)
            swap_exact_in(cw3, market.dex, market.dusd, market.dtkn, 200_000 * UNIT, sender=PUMPER)
        report = runtime.agent.tick()
        assert report.skipped is None, report
        statuses += [(i.strategy, i.why.split(":")[0], i.status) for i in report.intents]
        prom.wait_for_scrape()
    assert ("buyer", "test", "executed") in statuses, statuses
    assert ("thief", "test", "refused") in statuses, statuses
    assert any(s[1] == "take-profit" and s[2] == "executed" for s in statuses), statuses
    worked = time.monotonic()

    # The exposition passes promtool's lint.
    page = scrape(f"http://{instance}/metrics")
    lint = subprocess.run(
        [prom.promtool, "check", "metrics"],
        input=page,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    problems = f"promtool check metrics:\n{lint.stdout}{lint.stderr}"
    assert lint.returncode == 0, problems
    assert not lint.stdout.strip(), problems

    # The Agent variable: label_values(defiagent_ticks_total, instance) offers this agent.
    offered = prom.api("label/instance/values", **{"match[]": "defiagent_ticks_total"})
    assert instance in offered, offered
    variables = {**GRAFANA_VARIABLES, "instance": promql_regex(instance)}

    failures = []
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, expr in queries:
        query = substitute(expr, variables)
        result = prom.api("query", query=query)["result"]
        values = [float(r["value"][1]) for r in result]
        finite = [v for v in values if math.isfinite(v)]
        if not result:
            failures.append(f"{title}: no series for {query}")
        elif not finite:
            failures.append(f"{title}: only NaN/Inf ({values}) for {query}")
        elif COUNTERS.search(expr) and not any(v > 0 for v in finite):
            failures.append(f"{title}: only zeros, though it happened while scraped: {query}")
    assert not failures, "dashboard queries without data:\n" + "\n".join(failures)

    # Every exit reason has a series from the start, so a first exit shows as an increase.
    exits = prom.api("series", **{"match[]": "defiagent_position_exits_total"})
    assert {s["reason"] for s in exits} == {r.id for r in EXIT_RULES}
    print(
        f"agent started in {agent_ready - started:.1f}s, its target up "
        f"{up - agent_ready:.1f}s later, 4 ticks scraped in {worked - up:.1f}s, "
        f"{len(queries)} queries checked in {time.monotonic() - worked:.1f}s"
    )
