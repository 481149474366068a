"""Read pools, tokens, balances and allowances from the chain at one block.

Raw `eth_call`s with eth-abi encoding: no contract objects, so each read is one request.
Any RPC failure is an InfraError: the caller skips the tick, it never trades on a guess.
"""

from __future__ import annotations

from typing import cast

from eth_abi import decode, encode
from eth_typing import ChecksumAddress, HexStr
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3

from defiagent.errors import InfraError
from defiagent.market.models import PoolState, TokenInfo

_SEL = {
    sig: function_signature_to_4byte_selector(sig)
    for sig in (
        "getReserves()",
        "token0()",
        "token1()",
        "price0CumulativeLast()",
        "price1CumulativeLast()",
        "symbol()",
        "totalSupply()",
        "decimals()",
        "balanceOf(address)",
        "allowance(address,address)",
        "getPair(address,address)",
        "latestRoundData()",
    )
}


class ChainReader:
    """Typed reads at a pinned block number (`block`), or at latest when None."""

    def __init__(self, w3: Web3, block: int | None = None) -> None:
        self.w3 = w3
        self.block = block

    def at(self, block: int) -> ChainReader:
        return ChainReader(self.w3, block)

    def _call(self, to: str, sig: str, types: list[str] | None = None, args: list | None = None):
        data = _SEL[sig]
        if types:
            assert args is not None  # argument types come with their values
            data += encode(types, args)
        try:
            raw = self.w3.eth.call(
                {"to": to, "data": HexStr("0x" + data.hex())},
                block_identifier=self.block if self.block is not None else "latest",
            )
        except Exception as exc:
            raise InfraError(f"reading {sig} from {to} failed: {exc}") from exc
        if not raw:
            raise InfraError(f"{to} returned nothing for {sig} (is it a contract?)")
        return bytes(raw)

    def pool(self, pair: str) -> PoolState:
        r0, r1, ts = decode(["uint112", "uint112", "uint32"], self._call(pair, "getReserves()"))
        token0 = decode(["address"], self._call(pair, "token0()"))[0]
        token1 = decode(["address"], self._call(pair, "token1()"))[0]
        supply = decode(["uint256"], self._call(pair, "totalSupply()"))[0]
        return PoolState(
            address=to_checksum_address(pair),
            token0=to_checksum_address(token0),
            token1=to_checksum_address(token1),
            reserve0=r0,
            reserve1=r1,
            block_timestamp_last=ts,
            total_supply=supply,
        )

    def cumulative_prices(self, pair: str) -> tuple[int, int]:
        c0 = decode(["uint256"], self._call(pair, "price0CumulativeLast()"))[0]
        c1 = decode(["uint256"], self._call(pair, "price1CumulativeLast()"))[0]
        return c0, c1

    def token(self, address: str) -> TokenInfo:
        decimals = decode(["uint8"], self._call(address, "decimals()"))[0]
        raw = self._call(address, "symbol()")
        try:
            symbol = decode(["string"], raw)[0]
        except Exception:  # bytes32 symbols (old tokens like MKR)
            symbol = raw[:32].rstrip(b"\0").decode("utf-8", "replace")
        return TokenInfo(
            address=to_checksum_address(address), symbol=symbol[:32], decimals=decimals
        )

    def balance_of(self, token: str, owner: str) -> int:
        return decode(["uint256"], self._call(token, "balanceOf(address)", ["address"], [owner]))[0]

    def allowance(self, token: str, owner: str, spender: str) -> int:
        raw = self._call(
            token, "allowance(address,address)", ["address", "address"], [owner, spender]
        )
        return decode(["uint256"], raw)[0]

    def pair_for(self, factory: str, token_x: str, token_y: str) -> str | None:
        raw = self._call(
            factory, "getPair(address,address)", ["address", "address"], [token_x, token_y]
        )
        pair = decode(["address"], raw)[0]
        return None if int(pair, 16) == 0 else to_checksum_address(pair)

    def latest_round(self, feed: str) -> tuple[int, int, int]:
        """(answer, decimals, updatedAt) of a Chainlink AggregatorV3 feed."""
        _, answer, _, updated_at, _ = decode(
            ["uint80", "int256", "uint256", "uint256", "uint80"],
            self._call(feed, "latestRoundData()"),
        )
        decimals = decode(["uint8"], self._call(feed, "decimals()"))[0]
        return answer, decimals, updated_at

    def eth_balance(self, owner: str) -> int:
        try:
            # cast: web3 checks the address itself (and refuses one not checksummed).
            return self.w3.eth.get_balance(
                cast(ChecksumAddress, owner), block_identifier=self.block or "latest"
            )
        except Exception as exc:
            raise InfraError(f"reading the ETH balance of {owner} failed: {exc}") from exc
