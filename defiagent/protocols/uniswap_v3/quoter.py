"""Quotes from the real QuoterV2 contract, by `eth_call` on the fork.

QuoterV2 runs the swap in the pool itself and reverts with the result, so its quote is the
pool's own arithmetic (ticks crossed, fee, liquidity), not a model of it: this is the
figure the slippage bound is measured against. The call goes to the fork at the block the
simulation runs on, so the quote and the simulated swap see the same pool state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field
from web3 import Web3
from web3.types import RPCEndpoint

from defiagent.abi_signature import parse_signature
from defiagent.chain.rpc import RpcError, data_bytes
from defiagent.errors import InfraError
from defiagent.guard.packed_path import encode_path
from defiagent.types import Address

QUOTE_EXACT_INPUT_SINGLE = "quoteExactInputSingle((address,address,uint256,uint24,uint160))"
QUOTE_EXACT_INPUT = "quoteExactInput(bytes,uint256)"
QUOTE_EXACT_OUTPUT_SINGLE = "quoteExactOutputSingle((address,address,uint256,uint24,uint160))"
QUOTE_EXACT_OUTPUT = "quoteExactOutput(bytes,uint256)"
_SINGLE_OUT = ["uint256", "uint160", "uint32", "uint256"]
_MULTI_OUT = ["uint256", "uint160[]", "uint32[]", "uint256"]


class RpcCaller(Protocol):
    """What the readers need of an RPC client (JsonRpcClient and the fork's client)."""

    def call(self, method: str, *params: Any) -> Any: ...


class Web3Caller:
    """A web3 handle as an RpcCaller: its provider's raw requests, errors as RpcError."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def call(self, method: str, *params: Any) -> Any:
        try:
            body = self.w3.provider.make_request(RPCEndpoint(method), list(params))
        except Exception as exc:  # the transport failed: the node is not answering
            raise RpcError(f"RPC {method} did not answer: {exc}") from exc
        if body.get("error"):
            err = body["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            data = err.get("data") if isinstance(err, dict) else None
            raise RpcError(f"RPC {method} failed: {message}", data=data)
        return body.get("result")


class QuoteError(InfraError):
    """QuoterV2 could not quote the swap (no such pool, no liquidity, not enough out)."""


class V3Quote(BaseModel):
    """QuoterV2's answer for one swap: both amounts, tokens in swap order (sold first)."""

    model_config = ConfigDict(frozen=True)

    exact: Literal["in", "out"]
    tokens: list[Address] = Field(min_length=2)
    fees: list[int] = Field(min_length=1)
    amount_in: int = Field(ge=0)
    amount_out: int = Field(ge=0)
    gas_estimate: int = 0
    ticks_crossed: int = 0
    block: str = "latest"


def _call(rpc: RpcCaller, quoter: str, signature: str, args: list[Any], block: str) -> bytes:
    types = list(parse_signature(signature).types)
    data = function_signature_to_4byte_selector(signature) + encode(types, args)
    try:
        raw = rpc.call("eth_call", {"to": quoter, "data": "0x" + data.hex()}, block)
    except RpcError as exc:
        raise QuoteError(f"QuoterV2 at {quoter} cannot quote this swap: {exc}") from exc
    out = data_bytes(raw, "the fork", "eth_call")
    if not out:
        raise QuoteError(f"{quoter} returned nothing for {signature} (is it QuoterV2?)")
    return out


def _checked(path: Sequence[str], fees: Sequence[int]) -> tuple[list[Address], list[int]]:
    tokens: list[Address] = [to_checksum_address(t) for t in path]
    if len(tokens) < 2 or len(fees) != len(tokens) - 1:
        raise QuoteError(f"a swap through {len(tokens)} tokens needs {len(tokens) - 1} fee tiers")
    return tokens, list(fees)


def quote_exact_in(
    rpc: RpcCaller,
    quoter: str,
    path: Sequence[str],
    fees: Sequence[int],
    amount_in: int,
    *,
    block: str = "latest",
) -> V3Quote:
    """What selling `amount_in` of path[0] along the path pays of path[-1]."""
    tokens, fees_ = _checked(path, fees)
    if len(tokens) == 2:
        params = (tokens[0], tokens[1], amount_in, fees_[0], 0)
        out, _, ticks, gas = decode(
            _SINGLE_OUT, _call(rpc, quoter, QUOTE_EXACT_INPUT_SINGLE, [params], block)
        )
    else:
        packed = encode_path(tokens, fees_)
        out, _, ticks_list, gas = decode(
            _MULTI_OUT, _call(rpc, quoter, QUOTE_EXACT_INPUT, [packed, amount_in], block)
        )
        ticks = sum(ticks_list)
    return V3Quote(
        exact="in",
        tokens=tokens,
        fees=fees_,
        amount_in=amount_in,
        amount_out=out,
        gas_estimate=gas,
        ticks_crossed=ticks,
        block=block,
    )


def quote_exact_out(
    rpc: RpcCaller,
    quoter: str,
    path: Sequence[str],
    fees: Sequence[int],
    amount_out: int,
    *,
    block: str = "latest",
) -> V3Quote:
    """What buying `amount_out` of path[-1] along the path costs of path[0].

    `path` and `fees` are in swap order (sold first); QuoterV2 takes the multi-hop path
    reversed, as exactOutput does, and that reversal happens here only."""
    tokens, fees_ = _checked(path, fees)
    if len(tokens) == 2:
        params = (tokens[0], tokens[1], amount_out, fees_[0], 0)
        cost, _, ticks, gas = decode(
            _SINGLE_OUT, _call(rpc, quoter, QUOTE_EXACT_OUTPUT_SINGLE, [params], block)
        )
    else:
        packed = encode_path(tokens[::-1], fees_[::-1])
        cost, _, ticks_list, gas = decode(
            _MULTI_OUT, _call(rpc, quoter, QUOTE_EXACT_OUTPUT, [packed, amount_out], block)
        )
        ticks = sum(ticks_list)
    return V3Quote(
        exact="out",
        tokens=tokens,
        fees=fees_,
        amount_in=cost,
        amount_out=amount_out,
        gas_estimate=gas,
        ticks_crossed=ticks,
        block=block,
    )
