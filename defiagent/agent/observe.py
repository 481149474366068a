"""Read, outside the guard, what the guard's pure rules compare: code hashes and fees.

Every active allowlist entry's runtime code is fetched at one block in one batch and
hashed; for entries that are proxies the implementation address is read from the slot
their proxy kind uses, and its code hashed too. Any read that fails is left out, and the
CodehashPinned rule then refuses calls that depend on it (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable

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


def drift_reasons(
    allowlist: ActiveAllowlist,
    codehashes: dict[str, str],
    implementations: dict[str, tuple[str, str]] | None = None,
) -> dict[str, str]:
    """Entry address -> what no longer matches its pin (unread counts as changed).

    With `implementations` (proxy -> (implementation, its codehash), as `observe_code`
    returns them), a proxy entry whose implementation or implementation codehash is not the
    pinned one drifted too, although the proxy's own code is unchanged (an upgrade). Without
    it, only the entries' own code is compared.
    """
    out: dict[str, str] = {}
    for e in sorted(allowlist.entries.values(), key=lambda x: x.name):
        if e.revoked:
            continue
        observed = codehashes.get(e.address)
        if observed is None:
            out[e.address] = f"the code of {e.name} ({e.address}) was not read"
        elif observed.lower() != e.codehash.lower():
            out[e.address] = (
                f"the code of {e.name} ({e.address}) has codehash {observed}, "
                f"not the pinned {e.codehash}"
            )
        elif e.proxy is not None and implementations is not None:
            impl = implementations.get(e.address)
            if impl is None:
                out[e.address] = (
                    f"the implementation behind proxy {e.name} ({e.address}) was not read"
                )
            elif impl[0].lower() != e.proxy.implementation.lower():
                out[e.address] = (
                    f"proxy {e.name} ({e.address}) now points to {impl[0]}, "
                    f"not the pinned implementation {e.proxy.implementation}"
                )
            elif impl[1].lower() != e.proxy.implementation_codehash.lower():
                out[e.address] = (
                    f"the implementation {impl[0]} behind proxy {e.name} ({e.address}) has "
                    f"codehash {impl[1]}, not the pinned {e.proxy.implementation_codehash}"
                )
    return out


def drifted_entries(
    allowlist: ActiveAllowlist,
    codehashes: dict[str, str],
    implementations: dict[str, tuple[str, str]] | None = None,
) -> list[str]:
    """Names of the active entries whose observed code is not the code they pin (or unread);
    with `implementations`, also the proxies upgraded away from their pinned implementation."""
    reasons = drift_reasons(allowlist, codehashes, implementations)
    return sorted(allowlist.entries[address].name for address in reasons)


def pinned_code_problem(
    rpc: BatchRpcClient,
    allowlist: ActiveAllowlist,
    addresses: Iterable[str],
    block: int | str = "latest",
) -> str | None:
    """Right before signing: do the allowlisted contracts among `addresses` (the call's
    target and what its simulation touched) still hold their pinned code, and proxies their
    pinned implementation, at `block`? None if they do, else the reason to refuse.

    `"latest"` is resolved to one block number first, so a proxy's slot and its
    implementation's code are read at the same block. Raises InfraError if the chain cannot
    be read (the caller refuses then too).
    """
    if not isinstance(block, int) and block != "latest":
        raise ValueError("block must be a number or 'latest'")
    wanted = {a.lower() for a in addresses}
    entries = {a: e for a, e in allowlist.entries.items() if a.lower() in wanted and not e.revoked}
    if not entries:
        return None
    subset = ActiveAllowlist(chain_id=allowlist.chain_id, entries=entries)
    if block == "latest" and all(e.proxy is None for e in entries.values()):
        # No proxy: each code stands alone, so one batch at "latest" (and the number it
        # was read at, for the reason) is one round trip on the signing path.
        try:
            answers = rpc.batch(
                [("eth_blockNumber", []), *[("eth_getCode", [a, "latest"]) for a in entries]]
            )
            number = int(answers[0], 16)
        except (RpcError, TypeError, ValueError) as exc:
            raise InfraError(f"reading the pinned contracts' code failed: {exc}") from exc
        hashes = {a: codehash(code) for a, code in zip(entries, answers[1:], strict=True)}
        return _before_signing(drift_reasons(subset, hashes, {}), number)
    if not isinstance(block, int):
        try:
            block = int(rpc.call("eth_blockNumber"), 16)
        except (RpcError, TypeError, ValueError) as exc:
            raise InfraError(f"reading the latest block number failed: {exc}") from exc
    codehashes, implementations = observe_code(rpc, subset, block)
    return _before_signing(drift_reasons(subset, codehashes, implementations), block)


def _before_signing(reasons: dict[str, str], block: int) -> str | None:
    if not reasons:
        return None
    first = next(iter(reasons.values()))
    more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return f"{first} at block {block}, right before signing{more}"


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
    requests = [
        ("eth_getStorageAt", [e.address, _SLOTS[e.proxy.kind], tag])
        for e in slot_reads
        if e.proxy is not None  # always: slot_reads are proxies (for the type checker)
    ]
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
