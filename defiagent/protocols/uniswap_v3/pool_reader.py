"""Read a Uniswap V3 pool: its spot (slot0) and its TWAP from `observe()`.

The TWAP is the pool's own oracle: `observe([window, 0])` returns the tick accumulator
then and now, and their difference over the window is the arithmetic mean tick
(OracleLibrary.consult, rounded toward negative infinity as it does). A flash manipulation
inside one block moves spot, not the mean over minutes. When the pool's observation
history does not reach back `window` seconds, the pool reverts with "OLD": the reader then
says there is no answer (`None`), which the price check treats as a source that did not
answer, never as agreement.
"""

from __future__ import annotations

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field

from defiagent.chain.rpc import RpcError, data_bytes
from defiagent.errors import InfraError
from defiagent.protocols.uniswap_v3.pool_math import sqrt_price, tick_price
from defiagent.protocols.uniswap_v3.quoter import RpcCaller
from defiagent.types import Address

_SLOT0 = function_signature_to_4byte_selector("slot0()")
_OBSERVE = function_signature_to_4byte_selector("observe(uint32[])")
_LIQUIDITY = function_signature_to_4byte_selector("liquidity()")
_TOKEN0 = function_signature_to_4byte_selector("token0()")
_TOKEN1 = function_signature_to_4byte_selector("token1()")
_FEE = function_signature_to_4byte_selector("fee()")


class V3PoolState(BaseModel):
    """A V3 pool at one block: its tokens, fee tier, spot and in-range liquidity."""

    model_config = ConfigDict(frozen=True)

    address: Address
    token0: Address
    token1: Address
    fee: int
    sqrt_price_x96: int = Field(ge=0)
    tick: int
    liquidity: int = Field(ge=0)

    def spot(self, decimals0: int = 18, decimals1: int = 18) -> float:
        """Whole units of token1 per whole unit of token0."""
        return sqrt_price(self.sqrt_price_x96, decimals0, decimals1)


class V3Twap(BaseModel):
    """The pool's arithmetic mean tick over `window_seconds` up to `observed_at`."""

    model_config = ConfigDict(frozen=True)

    pool: Address
    window_seconds: int = Field(gt=0)
    mean_tick: int
    observed_at: int  # block timestamp the window ends at

    def price(self, decimals0: int = 18, decimals1: int = 18) -> float:
        """Whole units of token1 per whole unit of token0 at the mean tick."""
        return tick_price(self.mean_tick, decimals0, decimals1)


def _eth_call(rpc: RpcCaller, to: str, data: bytes, block: str, what: str) -> bytes:
    try:
        raw = rpc.call("eth_call", {"to": to, "data": "0x" + data.hex()}, block)
    except RpcError as exc:
        raise InfraError(f"reading {what} from {to} failed: {exc}") from exc
    out = data_bytes(raw, "the RPC", "eth_call")
    if not out:
        raise InfraError(f"{to} returned nothing for {what} (is it a Uniswap V3 pool?)")
    return out


def _revert_reason(exc: RpcError) -> str | None:
    """The Error(string) a call reverted with, from the error's data (or its message)."""
    data = exc.data if isinstance(exc.data, str) else ""
    if data.startswith("0x08c379a0"):
        try:
            (reason,) = decode(["string"], bytes.fromhex(data[10:]))
        except Exception:  # not an Error(string) after all
            return None
        return str(reason)
    message = str(exc)
    return (
        message.rsplit("execution reverted: ", 1)[1].strip()
        if "execution reverted: " in message
        else None
    )


def read_pool(rpc: RpcCaller, pool: str, *, block: str = "latest") -> V3PoolState:
    sqrt_x96, tick = decode(["uint160", "int24"], _eth_call(rpc, pool, _SLOT0, block, "slot0")[:64])
    (liquidity,) = decode(["uint128"], _eth_call(rpc, pool, _LIQUIDITY, block, "liquidity"))
    (token0,) = decode(["address"], _eth_call(rpc, pool, _TOKEN0, block, "token0"))
    (token1,) = decode(["address"], _eth_call(rpc, pool, _TOKEN1, block, "token1"))
    (fee,) = decode(["uint24"], _eth_call(rpc, pool, _FEE, block, "fee"))
    return V3PoolState(
        address=to_checksum_address(pool),
        token0=to_checksum_address(token0),
        token1=to_checksum_address(token1),
        fee=fee,
        sqrt_price_x96=sqrt_x96,
        tick=tick,
        liquidity=liquidity,
    )


def read_twap(
    rpc: RpcCaller, pool: str, window_seconds: int, *, now: int, block: str = "latest"
) -> V3Twap | None:
    """The mean tick over the last `window_seconds` (ending at block time `now`), or None
    when the pool's observations do not reach that far back (the pool says "OLD")."""
    if window_seconds <= 0:
        raise ValueError("a TWAP window must be at least one second")
    data = _OBSERVE + encode(["uint32[]"], [[window_seconds, 0]])
    try:
        raw = rpc.call("eth_call", {"to": pool, "data": "0x" + data.hex()}, block)
    except RpcError as exc:
        if _revert_reason(exc) == "OLD":
            return None  # the history is shorter than the window: no answer, not a pass
        raise InfraError(f"reading observe() from {pool} failed: {exc}") from exc
    tick_cumulatives, _ = decode(["int56[]", "uint160[]"], data_bytes(raw, "the RPC", "eth_call"))
    if len(tick_cumulatives) != 2:
        raise InfraError(f"{pool} answered observe() with {len(tick_cumulatives)} points, not 2")
    delta = tick_cumulatives[1] - tick_cumulatives[0]
    return V3Twap(
        pool=to_checksum_address(pool),
        window_seconds=window_seconds,
        mean_tick=delta // window_seconds,  # floor: OracleLibrary rounds toward -infinity
        observed_at=now,
    )
