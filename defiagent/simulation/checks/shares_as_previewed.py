"""An ERC-4626 call mints (or burns) the shares its vault's own preview promised."""

from __future__ import annotations

from eth_utils import keccak, to_checksum_address

from defiagent.allowlist.models import Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.models import SimulationOutcome

# The ERC-4626 functions that exchange assets for shares: a call to one of them that
# carries no preview cannot have its share price checked, so it is refused.
VAULT_SELECTORS = frozenset(
    "0x" + keccak(text=s)[:4].hex()
    for s in (
        "deposit(uint256,address)",
        "mint(uint256,address)",
        "withdraw(uint256,address,address)",
        "redeem(uint256,address,address)",
    )
)


def _bps(part: int, whole: int) -> str:
    return f"{part * 10_000 / whole:,.2f}" if whole else "an unbounded number of"


class SharesAsPreviewed(OutcomeCheck):
    id = "shares-as-previewed"
    description = (
        "An ERC-4626 deposit mints at least, and a withdraw burns at most, the shares the "
        "vault's previewDeposit / previewWithdraw stated on the fork just before the call, "
        "within the configured tolerance (share_tolerance_bps); a vault call whose preview "
        "is missing or unreadable is refused."
    )
    severity = Severity.CRITICAL
    rationale = (
        "A vault that hides a fee from its previews, or moves its own share price inside the "
        "call (a donation ahead of the depositor, as in an inflation attack), gives fewer "
        "shares for the assets, or takes more shares for them, than its exchange rate says."
    )

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        preview = call.share_preview
        if preview is None:
            if call.data[:10].lower() in VAULT_SELECTORS:
                return self.refuse(
                    f"the call to {call.target} exchanges assets for vault shares but carries "
                    "no share preview, so its share price cannot be checked"
                )
            return self.allow()
        if not outcome.success:
            return self.allow()  # nothing was minted or burnt; tx-succeeded says why
        promised = outcome.previewed_shares
        if promised is None:
            return self.refuse(
                f"the vault {preview.vault}'s preview could not be read on the fork (it "
                "reverted or did not answer a uint256), so its share price cannot be checked"
            )
        vault = to_checksum_address(preview.vault)
        delta = outcome.deltas.get(vault, 0)
        tolerance = ctx.share_tolerance_bps
        if preview.side == "mint":
            minted = delta
            if minted * 10_000 < promised * (10_000 - tolerance):
                return self.refuse(
                    f"the deposit mints {ctx.amount(vault, minted)} to the agent, but the "
                    f"vault's previewDeposit promised {ctx.amount(vault, promised)} on the same "
                    f"state: {_bps(promised - minted, promised)} bps fewer, beyond the "
                    f"{tolerance} bps tolerance"
                )
        else:
            burnt = -delta
            if burnt * 10_000 > promised * (10_000 + tolerance):
                return self.refuse(
                    f"the withdraw burns {ctx.amount(vault, burnt)} of the agent's shares, but "
                    f"the vault's previewWithdraw promised {ctx.amount(vault, promised)} on the "
                    f"same state: {_bps(burnt - promised, promised)} bps more, beyond the "
                    f"{tolerance} bps tolerance"
                )
        return self.allow()
