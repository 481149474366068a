"""Read, outside the guard, what the guard's pure rules compare: code hashes and fees.

Every active allowlist entry's runtime code is fetched at one block in one batch and
hashed; for entries that are proxies the implementation address is read from the slot
their proxy kind uses, and its code hashed too. Any read that fails is left out, and the
CodehashPinned rule then refuses calls that depend on it (fail closed).
"""

from __future__ import annotations

from eth_utils import keccak, to_checksum_address

from defiagent.allowlist.models import ActiveAllowlist, ProxyKind
from defiagent.chain.rpc import RpcError
from defiagent.errors import InfraError
from defiagent.simulation.batch import BatchRpcClient

# Storage slots that hold a proxy's implementation (or beacon), by proxy kind.
EIP1967_IMPLEMENTATION = "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"
EIP1967_BEACON = "0xa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6cb3582b35133d50"
EIP1822_PROXIABLE = "0xc5f16f0fcc639fa48a6947836d9850f504798523bf8c9a3a87d5876cf622bcf7"
OZ_LEGACY_IMPLEMENTATION = "0x7050c9e0f4ca769c69bd3a8ef740bc37934f8e2c036e5a723fd8ee048ed3f8c3"
SAFE_SINGLETON = "0x0"
_SLOTS = {
    ProxyKind.EIP1967: EIP1967_IMPLEMENTATION,
    ProxyKind.EIP1822: EIP1822_PROXIABLE,
    ProxyKind.OZ_LEGACY: OZ_LEGACY_IMPLEMENTATION,
    ProxyKind.SAFE: SAFE_SINGLETON,
}
_BEACON_IMPLEMENTATION = "0x5c60da1b"  # implementation()
_EIP1167_PREFIX = "363d3d373d3d3d363d73"


def codehash(code_hex: str) -> str:
    return "0x" + keccak(hexstr=code_hex or "0x").hex()


def _word_to_address(word: str | None) -> str | None:
    if not word or len(word.removeprefix("0x")) < 40:
        return None
    value = int(word, 16)
    if value == 0 or value >= 2**160:
        return None
    return to_checksum_address(f"0x{value:040x}")


def drifted_entries(allowlist: ActiveAllowlist, codehashes: dict[str, str]) -> list[str]:
    """Names of the active entries whose observed code is not the code they pin (or unread)."""
    return sorted(
        e.name
        for e in allowlist.entries.values()
        if not e.revoked and codehashes.get(e.address, "").lower() != e.codehash.lower()
    )


def observe_code(
    rpc: BatchRpcClient, allowlist: ActiveAllowlist, block: int
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(address -> codehash, proxy address -> (implementation, its codehash)) at `block`."""
    tag = hex(block)
    entries = [e for e in allowlist.entries.values() if not e.revoked]
    try:
        codes = rpc.batch([("eth_getCode", [e.address, tag]) for e in entries])
    except RpcError as exc:
        raise InfraError(f"reading the allowlisted contracts' code failed: {exc}") from exc
    hashes = {e.address: codehash(code) for e, code in zip(entries, codes, strict=True)}
    raw_code = {e.address: code for e, code in zip(entries, codes, strict=True)}

    impls: dict[str, str] = {}
    slot_reads = [e for e in entries if e.proxy is not None and e.proxy.kind in _SLOTS]
    beacon_reads = [
        e for e in entries if e.proxy is not None and e.proxy.kind == ProxyKind.EIP1967_BEACON
    ]
    requests = [("eth_getStorageAt", [e.address, _SLOTS[e.proxy.kind], tag]) for e in slot_reads]
    requests += [("eth_getStorageAt", [e.address, EIP1967_BEACON, tag]) for e in beacon_reads]
    try:
        words = rpc.batch(requests) if requests else []
    except RpcError as exc:
        raise InfraError(f"reading proxy implementation slots failed: {exc}") from exc
    for e, word in zip(slot_reads, words[: len(slot_reads)], strict=True):
        if (impl := _word_to_address(word)) is not None:
            impls[e.address] = impl
    beacons = {}
    for e, word in zip(beacon_reads, words[len(slot_reads) :], strict=True):
        if (beacon := _word_to_address(word)) is not None:
            beacons[e.address] = beacon
    if beacons:
        calls = [
            ("eth_call", [{"to": b, "data": _BEACON_IMPLEMENTATION}, tag]) for b in beacons.values()
        ]
        try:
            answers = rpc.batch(calls)
        except RpcError:
            answers = [None] * len(calls)
        for proxy, answer in zip(beacons, answers, strict=True):
            if (impl := _word_to_address(answer)) is not None:
                impls[proxy] = impl
    for e in entries:
        if e.proxy is not None and e.proxy.kind == ProxyKind.EIP1167:
            code = (raw_code.get(e.address) or "").removeprefix("0x")
            if code.startswith(_EIP1167_PREFIX):
                impls[e.address] = to_checksum_address("0x" + code[20:60])

    implementations: dict[str, tuple[str, str]] = {}
    if impls:
        targets = list(dict.fromkeys(impls.values()))
        try:
            impl_codes = rpc.batch([("eth_getCode", [a, tag]) for a in targets])
        except RpcError as exc:
            raise InfraError(f"reading proxy implementations' code failed: {exc}") from exc
        impl_hash = {a: codehash(c) for a, c in zip(targets, impl_codes, strict=True)}
        implementations = {p: (a, impl_hash[a]) for p, a in impls.items()}
    return hashes, implementations
