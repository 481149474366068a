"""What a vault share is worth: the vault's own exchange rate times its asset's price.

The value caps count a withdraw's outflow in shares, so shares need a numeraire price: the
agent reads `convertToAssets` on chain and multiplies by the asset's sane price. An asset
without a price leaves its vault's shares unpriced, and a limit that needs them refuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eth_abi import decode as abi_decode
from web3 import Web3
from web3.types import BlockIdentifier

from defiagent.guard.calldata import encode_call
from defiagent.protocols.erc4626.functions import CONVERT_TO_ASSETS
from defiagent.protocols.erc4626.settings import VaultSpec

_PROBE = 10**24  # shares converted at once: the rate's rounding stays far below a unit


def share_prices(
    w3: Web3,
    vaults: Sequence[VaultSpec],
    prices: Mapping[str, float],
    *,
    block: BlockIdentifier = "latest",
) -> dict[str, float]:
    """Vault address -> numeraire per smallest share unit, for vaults whose asset is priced
    (prices as in GuardContext.prices: numeraire per smallest unit of each token), read at
    `block` (the snapshot's). A vault whose rate cannot be read is left out (unpriced)."""
    out: dict[str, float] = {}
    data = encode_call(CONVERT_TO_ASSETS, [_PROBE])
    for v in vaults:
        asset_price = prices.get(v.asset)
        if asset_price is None:
            continue
        try:
            answer = w3.eth.call({"to": v.address, "data": data}, block)  # type: ignore[typeddict-item]
            (assets,) = abi_decode(["uint256"], bytes(answer))
        except Exception:  # noqa: S112 - a reverting or silent vault stays unpriced (fail closed)
            continue
        out[v.address] = assets / _PROBE * asset_price
    return out
