"""Proxy resolution: which code really runs behind an address.

Standards read: EIP-1967 (implementation and beacon slots, plus the admin slot), EIP-1822
(UUPS "PROXIABLE" slot), EIP-1167 minimal proxies (and the PUSH0 form of ERC-7511), the
older OpenZeppelin (zos) slots and Safe's singleton in slot 0. The implementation is
vetted like any contract and pinned with its codehash, so an upgrade voids the approval.
"""

from __future__ import annotations

from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field

from defiagent.allowlist.models import ProxyKind
from defiagent.vetting.bytecode import DELEGATECALL, codehash, opcodes
from defiagent.vetting.onchain import ChainReader


def _slot(label: str, minus_one: bool) -> int:
    return int.from_bytes(keccak(text=label), "big") - (1 if minus_one else 0)


EIP1967_IMPLEMENTATION = _slot("eip1967.proxy.implementation", True)
EIP1967_BEACON = _slot("eip1967.proxy.beacon", True)
EIP1967_ADMIN = _slot("eip1967.proxy.admin", True)
EIP1822_PROXIABLE = _slot("PROXIABLE", False)
OZ_LEGACY_IMPLEMENTATION = _slot("org.zeppelinos.proxy.implementation", False)
OZ_LEGACY_ADMIN = _slot("org.zeppelinos.proxy.admin", False)
SAFE_SINGLETON = 0

IMPLEMENTATION_SELECTOR = keccak(text="implementation()")[:4]
SAFE_MASTER_COPY = keccak(text="masterCopy()")[:4]

_EIP1167 = (bytes.fromhex("363d3d373d3d3d363d73"), bytes.fromhex("5af43d82803e903d91602b57fd5bf3"))
_ERC7511 = (bytes.fromhex("365f5f375f5f365f73"), bytes.fromhex("5af43d5f5f3e5f3d91602a57fd5bf3"))


class ProxyResolution(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ProxyKind | None = None
    implementation: str | None = None
    implementation_codehash: str | None = None
    implementation_code: bytes = Field(default=b"", exclude=True, repr=False)
    admin: str | None = None
    beacon: str | None = None
    delegates_elsewhere: bool = False  # DELEGATECALL in code but no known proxy layout
    problems: list[str] = []

    @property
    def is_proxy(self) -> bool:
        return self.kind is not None


def _address_in(word: bytes) -> str | None:
    word = word.rjust(32, b"\0")[-32:]
    if any(word[:12]) or not any(word[12:]):
        return None  # empty, or not an address-shaped value
    return to_checksum_address(word[12:])


def minimal_proxy_target(code: bytes) -> str | None:
    for head, tail in (_EIP1167, _ERC7511):
        if (
            len(code) == len(head) + 20 + len(tail)
            and code.startswith(head)
            and code.endswith(tail)
        ):
            return to_checksum_address(code[len(head) : len(head) + 20])
    return None


def _detect(reader: ChainReader, address: str, code: bytes) -> tuple[ProxyKind | None, dict]:
    """(kind, details) for the first layout that holds; (None, {}) for a plain contract."""
    target = minimal_proxy_target(code)
    if target:
        return ProxyKind.EIP1167, {"implementation": target}
    if DELEGATECALL not in opcodes(code):
        return None, {}
    impl = _address_in(reader.storage(address, EIP1967_IMPLEMENTATION))
    if impl:
        admin = _address_in(reader.storage(address, EIP1967_ADMIN))
        return ProxyKind.EIP1967, {"implementation": impl, "admin": admin}
    beacon = _address_in(reader.storage(address, EIP1967_BEACON))
    if beacon:
        answer = reader.call(beacon, IMPLEMENTATION_SELECTOR)
        admin = _address_in(reader.storage(address, EIP1967_ADMIN))
        return ProxyKind.EIP1967_BEACON, {
            "beacon": beacon,
            "implementation": _address_in(answer[:32]) if answer else None,
            "admin": admin,
        }
    impl = _address_in(reader.storage(address, EIP1822_PROXIABLE))
    if impl:
        return ProxyKind.EIP1822, {"implementation": impl}
    impl = _address_in(reader.storage(address, OZ_LEGACY_IMPLEMENTATION))
    if impl:
        admin = _address_in(reader.storage(address, OZ_LEGACY_ADMIN))
        return ProxyKind.OZ_LEGACY, {"implementation": impl, "admin": admin}
    # Safe's proxy answers masterCopy() itself from slot 0. Ask rather than look for the
    # selector in the code: optimisers encode that constant in many ways.
    singleton = _address_in(reader.storage(address, SAFE_SINGLETON))
    if singleton:
        answer = reader.call(address, SAFE_MASTER_COPY)
        if answer and len(answer) == 32 and _address_in(answer) == singleton:
            return ProxyKind.SAFE, {"implementation": singleton}
    return None, {"delegates_elsewhere": True}


def resolve_proxy(reader: ChainReader, address: str, code: bytes | None = None) -> ProxyResolution:
    address = to_checksum_address(address)
    code = reader.code(address) if code is None else code
    kind, found = _detect(reader, address, code)
    if kind is None:
        return ProxyResolution(delegates_elsewhere=bool(found.get("delegates_elsewhere")))
    problems: list[str] = []
    impl = found.get("implementation")
    impl_code = b""
    if impl is None:
        problems.append(f"the {kind} proxy's beacon {found.get('beacon')} names no implementation")
    else:
        impl_code = reader.code(impl)
        if not impl_code:
            problems.append(f"the implementation {impl} has no code")
        else:
            nested, _ = _detect(reader, impl, impl_code)
            if nested is not None:
                problems.append(f"the implementation {impl} is itself a {nested} proxy")
    return ProxyResolution(
        kind=kind,
        implementation=impl,
        implementation_codehash=codehash(impl_code) if impl_code else None,
        implementation_code=impl_code,
        admin=found.get("admin"),
        beacon=found.get("beacon"),
        problems=problems,
    )
