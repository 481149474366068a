"""A quorum of independent RPC providers over what a plan relies on.

One provider can lie consistently (reserves and cumulative prices moved together pass the
price check, and a min-out follows the lie). With `rpc_urls`, each tick the other providers
are asked, at the primary's block number, for the block hash, the code of every active
allowlist entry and the reserves of every watched pool; fewer than `rpc_quorum` providers
(the primary included) agreeing with the primary is an infrastructure error: the tick is
skipped, nothing is signed. What a quorum does not cover is in docs/price-sanity.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, keccak

from defiagent.chain.rpc import RpcError
from defiagent.errors import InfraError
from defiagent.market.models import PoolState
from defiagent.simulation.batch import BatchRpcClient

_GET_RESERVES = "0x" + function_signature_to_4byte_selector("getReserves()").hex()


def host_of(url: str) -> str:
    """A provider as it may be named in a log: scheme and host, never a path or key."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"


def _reads(block: int, addresses: Sequence[str], pools: Sequence[PoolState]) -> list:
    tag = hex(block)
    return [
        ("eth_getBlockByNumber", [tag, False]),
        *[("eth_getCode", [a, tag]) for a in addresses],
        *[("eth_call", [{"to": p.address, "data": _GET_RESERVES}, tag]) for p in pools],
    ]


def _view(answers: list, addresses: Sequence[str], pools: Sequence[PoolState]) -> dict[str, str]:
    """What a provider said, as comparable strings keyed by what they describe."""
    header, rest = answers[0], answers[1:]
    if not isinstance(header, dict) or not header.get("hash"):
        raise InfraError("it does not have that block yet")
    view = {"block hash": str(header["hash"]).lower()}
    for address, code in zip(addresses, rest[: len(addresses)], strict=True):
        view[f"code of {address}"] = "0x" + keccak(hexstr=str(code) or "0x").hex()
    for pool, raw in zip(pools, rest[len(addresses) :], strict=True):
        r0, r1, _ = decode(["uint112", "uint112", "uint32"], bytes.fromhex(str(raw)[2:]))
        view[f"reserves of {pool.address}"] = f"{r0}/{r1}"
    return view


class ProviderQuorum:
    def __init__(self, urls: Iterable[str], *, quorum: int, timeout: float = 10.0) -> None:
        self.clients = [BatchRpcClient(u, timeout=timeout) for u in urls]
        self.names = [host_of(u) for u in urls]
        self.quorum = quorum

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def check(
        self,
        primary: BatchRpcClient,
        block: int,
        codehashes: Mapping[str, str],
        pools: Sequence[PoolState],
    ) -> None:
        """InfraError unless `quorum` providers (the primary counted) agree at `block`.

        The primary's side is what the tick already read from it (`codehashes` of the
        allowlisted contracts, the snapshot's `pools`): only its block hash is asked for."""
        addresses = sorted(codehashes)
        reads = _reads(block, addresses, pools)
        try:
            header = primary.call("eth_getBlockByNumber", hex(block), False)
        except RpcError as exc:
            raise InfraError(f"the primary RPC could not be read for the quorum: {exc}") from exc
        if not isinstance(header, dict) or not header.get("hash"):
            raise InfraError(f"the primary RPC has no block {block} for the quorum")
        mine = {"block hash": str(header["hash"]).lower()}
        mine |= {f"code of {a}": codehashes[a].lower() for a in addresses}
        mine |= {f"reserves of {p.address}": f"{p.reserve0}/{p.reserve1}" for p in pools}
        agree, problems = 1, []
        for client, name in zip(self.clients, self.names, strict=True):
            try:
                theirs = _view(client.batch(reads), addresses, pools)
            except (RpcError, InfraError, ValueError) as exc:
                problems.append(f"{name}: {getattr(exc, 'message', type(exc).__name__)}")
                continue
            differ = [k for k in mine if theirs.get(k) != mine[k]]
            if differ:
                problems.append(f"{name} disagrees on the {', '.join(differ[:3])}")
            else:
                agree += 1
        if agree < self.quorum:
            raise InfraError(
                f"only {agree} of the required {self.quorum} RPC providers agree on block "
                f"{block}: {'; '.join(problems)}"
            )
