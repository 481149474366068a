"""defiagent's DeFi detectors, each on a vulnerable contract and its fixed twin, and on
known-good code (OpenZeppelin 5, Uniswap V2, WETH9) that must not trip them.

Every contract goes through the real pipeline (solcjs, Slither with our detectors, the
gate): the contracts of one compiler version are vetted together, once per module.
"""

from __future__ import annotations

import pytest

from defiagent.allowlist.policy import Policy
from defiagent.vetting.npm_sources import npm_sources
from defiagent.vetting.vet import vet_sources
from tests.allowlist.support import CONTRACTS

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("defi-detectors")]

DEFI = CONTRACTS / "defi"
NEW_CHECKS = {
    "signature-replay",
    "unprotected-mint",
    "spot-price-oracle",
    "vault-share-inflation",
    "unlocked-implementation",
    "unchecked-arithmetic",
}

# check, where it must be reported in the vulnerable contract, the fixed twin's contract
CASES = [
    ("signature-replay", "ReplayableVoucher.redeem(", "NoncedVoucher", "v08"),
    ("unprotected-mint", "OpenMintToken.mint(address,uint256)", "OwnedMintToken", "v08"),
    ("unprotected-mint", "OpenMintToken.burn(address,uint256)", "OwnedMintToken", "v08"),
    ("spot-price-oracle", "SpotLender.borrow(uint256)", "FeedLender", "v08"),
    ("vault-share-inflation", "DonationVault.deposit(uint256)", "OffsetVault", "v08"),
    ("unlocked-implementation", "OpenImplementation ", "LockedImplementation", "v08"),
    ("unchecked-arithmetic", "BatchToken.batchTransfer(", "SafeBatchToken", "v05"),
]


@pytest.fixture(scope="module")
def vetted():
    return {folder: vet_sources(DEFI / folder, policy=Policy()) for folder in ("v08", "v05", "oz")}


def _ours(vetting):
    return [f for f in vetting.report.slither.failing if f.check in NEW_CHECKS]


@pytest.mark.parametrize(("check", "where", "twin", "folder"), CASES, ids=[c[1] for c in CASES])
def test_the_vulnerable_contract_is_refused_and_its_twin_is_not(vetted, check, where, twin, folder):
    report = vetted[folder].report
    assert not report.passed
    hits = [f for f in _ours(vetted[folder]) if f.check == check]
    assert any(where in f.description for f in hits), [f.description for f in hits]
    # The gate refuses on it, with the detector's own impact and confidence.
    reasons = [o.reason for o in report.failures() if o.check == "slither-gate"]
    assert any(
        r.startswith(f"{check} (High impact") or r.startswith(f"{check} (Medium") for r in reasons
    )
    # The fixed twin, analysed in the same run, raises none of the DeFi detectors.
    assert not [f.description for f in _ours(vetted[folder]) if twin in f.description]


def test_each_vulnerable_contract_trips_only_its_own_detector(vetted):
    found = {
        (f.check, f.description.split("(")[0].split(".")[0].strip())
        for v in vetted.values()
        for f in _ours(v)
    }
    assert found == {
        ("signature-replay", "ReplayableVoucher"),
        ("unprotected-mint", "OpenMintToken"),
        ("spot-price-oracle", "SpotLender"),
        ("vault-share-inflation", "DonationVault"),
        ("unlocked-implementation", "OpenImplementation"),
        ("unchecked-arithmetic", "BatchToken"),
    }


def test_openzeppelin_building_blocks_trip_none_of_them(vetted):
    # ERC20Permit, burnable, flash mint, owner-only mint, ERC4626, locked UUPS.
    assert _ours(vetted["oz"]) == []


@pytest.mark.parametrize("name", ["uniswap-v2-pair", "uniswap-v2-router02", "weth9"])
def test_uniswap_v2_and_weth9_trip_none_of_them(name):
    vetting = vet_sources(npm_sources(name), policy=Policy())
    assert vetting.report.slither is not None
    assert _ours(vetting) == []


def test_the_detectors_are_listed_with_their_metadata(capsys):
    import json

    from defiagent.cli.app import main

    assert main(["vet", "--list-checks", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["checks"]}
    for check in NEW_CHECKS | {"unprotected-auth-write"}:
        assert rows[check]["kind"] == "slither-detector"
        assert rows[check]["description"]
