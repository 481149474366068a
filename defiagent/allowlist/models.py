"""Allowlist entry schema (one TOML file per contract and chain).

This is the shared contract between vetting (which writes and verifies entries) and the
guard (which reads the active ones). Field names used by the guard: chain_id, address,
role, codehash, proxy.implementation/implementation_codehash, functions[].selector,
functions[].signature, functions[].constraints, functions[].roles, allowed_callees.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from defiagent.types import Address, Hash32, Selector


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(StrEnum):
    ROUTER = "router"
    # A contract the agent may approve that is not a router, e.g. a vault or an aggregator's
    # settlement contract. With router, the only roles an approval's spender may have.
    SPENDER = "spender"
    POOL = "pool"
    FACTORY = "factory"
    TOKEN = "token"
    WRAPPED_NATIVE = "wrapped-native"
    LENDING_MARKET = "lending-market"
    ORACLE = "oracle"
    OTHER = "other"


class ProxyKind(StrEnum):
    EIP1967 = "eip1967"
    EIP1967_BEACON = "eip1967-beacon"
    EIP1822 = "eip1822"
    EIP1167 = "eip1167"
    OZ_LEGACY = "oz-legacy"
    SAFE = "safe"


class ProxyInfo(Strict):
    kind: ProxyKind
    admin: Address | None = None
    beacon: Address | None = None
    implementation: Address
    implementation_codehash: Hash32


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFORMATIONAL = "informational"


class AuditFinding(Strict):
    id: str
    severity: Severity
    title: str
    status: Literal["open", "acknowledged", "fixed"]


class AuditedContract(Strict):
    """ERC-7512 `Contract`: what the audit covers, bound to bytecode.

    Without chain_id/address the audit covers this runtime bytecode wherever it is deployed
    (every Uniswap V2 pair shares one runtime code); with them, only that deployment.
    """

    chain_id: int | None = None
    address: Address | None = None
    runtime_codehash: Hash32


class AuditorInfo(Strict):
    name: str
    uri: str | None = None
    address: Address  # the key the auditor signs with (ERC-7512 auditor.authors)


class AuditRecord(Strict):
    """Modelled on ERC-7512's AuditSummary."""

    auditor: AuditorInfo
    issued_at: date
    report_uri: str
    report_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    contracts: list[AuditedContract]
    findings: list[AuditFinding] = []
    signature: str | None = None  # EIP-712 signature by auditor.address over the record


class TriagedFinding(Strict):
    """A waived Slither finding, signed by a reviewer, bound to Slither's id and either:

    * `codehash`: the runtime code analysed (waives it in that code only), or
    * `source_sha256` (+ `source_unit`): one exact source file. It then waives that finding
      in every contract built with that file, wherever the finding lies wholly in it: a
      library such as OpenZeppelin's Math.sol is triaged once. Another file content (a
      swapped dependency) has another sha256, and the record does not apply.
    """

    slither_id: str
    check: str
    codehash: Hash32 | None = None
    source_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    source_unit: str | None = None
    reason: str = Field(min_length=10)
    reviewer: Address
    signature: str

    @model_validator(mode="after")
    def _one_binding(self) -> Self:
        if (self.codehash is None) == (self.source_sha256 is None):
            raise ValueError("a triage record names either a codehash or a source_sha256")
        if (self.source_sha256 is None) != (self.source_unit is None):
            raise ValueError("source_sha256 and source_unit go together")
        return self

    @model_serializer(mode="wrap")
    def _omit_unused_binding(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Records bound to a codehash serialise as before the source binding existed, so
        # the entries that hold them keep their canonical hash (and their approvals).
        data = handler(self)
        if isinstance(data, dict):
            for key in ("codehash", "source_sha256", "source_unit"):
                if data.get(key) is None:
                    data.pop(key, None)
        return data

    @property
    def binding(self) -> str:
        """What the record is bound to, in words."""
        if self.source_sha256 is not None:
            return f"source {self.source_unit} (sha256 {self.source_sha256[:12]})"
        return f"code {self.codehash}"


SourceMatchLevel = Literal["full", "partial", "mismatch", "unverified"]


class SlitherSummary(Strict):
    slither_version: str
    solc_version: str | None = None
    codehash: Hash32  # the runtime code the analysed sources were matched to
    counts: dict[str, int] = {}  # impact -> number of findings
    failing: list[str] = []  # ids of findings above the policy threshold, before triage
    triaged: list[TriagedFinding] = []
    result_sha256: str | None = None  # sha256 of the full JSON kept beside the entry
    source_match: SourceMatchLevel | None = None  # how the sources were bound to `codehash`
    sources_digest: str | None = None  # sha256 over the analysed source units
    # failing finding id -> sha256 of the one source file it lies wholly in (what a
    # source-bound triage record is checked against offline); left out when empty.
    failing_sources: dict[str, str] = {}

    @model_serializer(mode="wrap")
    def _omit_empty_sources(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not self.failing_sources and isinstance(data, dict):
            data.pop("failing_sources", None)
        return data


ReviewBasis = Literal["sources", "bytecode"]


class MythrilSummary(Strict):
    """Mythril's result on the runtime code of a bytecode-only review, as reviewers sign it."""

    mythril_version: str
    execution_timeout: int = Field(ge=1)  # seconds of symbolic execution
    codehash: Hash32  # the runtime code analysed
    high: list[str] = []  # the high-severity issues found (any one refuses the entry)
    other: int = Field(default=0, ge=0)  # issues of lower severity (in the review report)

    def describe(self) -> str:
        """What Mythril found, in words: "no high-severity issue within 10 s"."""
        if self.high:
            return (
                f"{len(self.high)} high-severity issue(s) within {self.execution_timeout} s: "
                + "; ".join(self.high)
            )
        others = f" ({self.other} of lower severity)" if self.other else ""
        return f"no high-severity issue within {self.execution_timeout} s{others}"


def bytecode_review_line(mythril: str) -> str:
    """The one line that says an entry was reviewed on its bytecode alone."""
    return f"bytecode-only review: no sources; Slither not run; Mythril: {mythril}"


class ConstraintKind(StrEnum):
    EQUALS_SELF = "equals-self"  # the argument must be the agent's own address
    MAX_AMOUNT = "max-amount"  # uint argument at most `value`
    IN_ALLOWLIST = "in-allowlist"  # address argument is an active allowlist entry
    IN_TOKEN_ALLOWLIST = (
        "in-token-allowlist"  # address argument (or every element) is a token entry
    )
    EQUALS = "equals"  # argument equals `value`


class ArgConstraint(Strict):
    arg: str  # argument name in the signature, e.g. "to", "spender", "path"
    kind: ConstraintKind
    value: str | None = None  # for max-amount (decimal wei) and equals


class ArgRole(StrEnum):
    """What an argument of an allowed function means to the guard's argument rules.

    The slippage, price and deadline rules find the arguments they judge by these roles,
    never by the argument's name: a function whose scope declares no argument for a role
    a rule needs is refused by that rule (see docs/allowlist.md).
    """

    RECIPIENT = "recipient"  # address that receives the proceeds
    SPENDER = "spender"  # address an approval lets pull tokens
    DEADLINE = "deadline"  # unix time after which the call reverts
    AMOUNT_IN = "amount-in"  # exact amount sold (a swap with a min-out)
    AMOUNT_OUT = "amount-out"  # exact amount bought (a swap with a max-in)
    MIN_OUT = "min-out"  # least amount bought for amount-in
    MAX_IN = "max-in"  # most amount sold for amount-out
    PATH = "path"  # address[]: the tokens a swap goes through, first sold, last bought
    TOKEN_IN = "token-in"  # a single-pool swap: the token sold
    TOKEN_OUT = "token-out"  # a single-pool swap: the token bought
    TOKEN_A = "token-a"  # a liquidity change: the pool's two tokens
    TOKEN_B = "token-b"
    AMOUNT_A_DESIRED = "amount-a-desired"  # adding liquidity: the amounts offered
    AMOUNT_B_DESIRED = "amount-b-desired"
    AMOUNT_A_MIN = "amount-a-min"  # a liquidity change: the least of each token accepted
    AMOUNT_B_MIN = "amount-b-min"
    LIQUIDITY = "liquidity"  # removing liquidity: the LP tokens burnt
    # Uniswap V3's packed path (bytes: token, fee, token...): in swap order, the token sold
    # first (exactInput), or reversed, the token bought first (exactOutput).
    PACKED_PATH = "packed-path"
    PACKED_PATH_REVERSED = "packed-path-reversed"
    FEE = "fee"  # a single-pool swap: the pool's fee tier (Uniswap V3), which picks the pool

    @property
    def expects(self) -> str:
        """The ABI type an argument with this role must have, in words."""
        if self is ArgRole.PATH:
            return "an address[]"
        if self in (ArgRole.PACKED_PATH, ArgRole.PACKED_PATH_REVERSED):
            return "a bytes"
        if self in _ADDRESS_ROLES:
            return "an address"
        return "a uint"

    def fits(self, abi_type: str) -> bool:
        if self is ArgRole.PATH:
            return abi_type == "address[]"
        if self in (ArgRole.PACKED_PATH, ArgRole.PACKED_PATH_REVERSED):
            return abi_type == "bytes"
        if self in _ADDRESS_ROLES:
            return abi_type == "address"
        return abi_type.startswith("uint") and "[" not in abi_type


_ADDRESS_ROLES = frozenset(
    {
        ArgRole.RECIPIENT,
        ArgRole.SPENDER,
        ArgRole.TOKEN_IN,
        ArgRole.TOKEN_OUT,
        ArgRole.TOKEN_A,
        ArgRole.TOKEN_B,
    }
)


class AllowedFunction(Strict):
    selector: Selector
    signature: str  # canonical with names, e.g. "approve(address spender,uint256 amount)"
    constraints: list[ArgConstraint] = []
    payable: bool = False
    # Argument name -> its role, as the reviewer declares and signs it. Left out of the entry
    # (and of the hash reviewers sign) when empty, so entries signed before roles existed
    # keep their signatures; such a function gets the roles its argument names have by the
    # known conventions when it is loaded (`arg_roles`). Declared roles are the whole story:
    # nothing is added to them from names.
    roles: dict[str, ArgRole] = {}
    _arg_roles: dict[str, ArgRole] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object, /) -> None:
        self._arg_roles = dict(self.roles) if self.roles else _conventional_roles(self.signature)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        if update:  # the signature or roles may have changed: derive again
            copy.model_post_init(None)
        return copy

    @model_serializer(mode="wrap")
    def _omit_empty_roles(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not self.roles and isinstance(data, dict):
            data.pop("roles", None)
        return data

    @property
    def arg_roles(self) -> dict[str, ArgRole]:
        """Argument name -> role, the ones the rules read: declared, else by convention."""
        return self._arg_roles

    def arg_for(self, role: ArgRole) -> str | None:
        return next((arg for arg, r in self._arg_roles.items() if r == role), None)


def _conventional_roles(signature: str) -> dict[str, ArgRole]:
    from defiagent.guard.conventions import conventional_roles  # the guard imports this module

    return conventional_roles(signature)


class Approval(Strict):
    reviewer: Address
    scheme: Literal["eip191", "eip712"] = "eip712"
    signature: str
    signed_at: datetime


class AllowlistEntry(Strict):
    schema_version: Literal[1] = 1
    chain_id: int
    address: Address
    name: str
    role: Role
    codehash: Hash32  # keccak of the runtime bytecode at `address`
    proxy: ProxyInfo | None = None
    audits: list[AuditRecord] = []
    slither: SlitherSummary | None = None
    functions: list[AllowedFunction] = []
    allowed_callees: list[Address] = []  # contracts a call may touch beyond allowlist entries
    notes: str = ""
    revoked: bool = False
    revoked_reason: str | None = None
    approvals: list[Approval] = []
    # A token that keeps a fee on transfers, as its reviewers found it: the most it may take
    # of one transfer, in basis points. Signed with the entry; it makes the planner swap the
    # token with the router's ...SupportingFeeOnTransferTokens functions and lets the
    # slippage bound and the round trip expect that fee (never more). None (the default, and
    # left out of the entry and its hash, so older signatures hold): no fee is expected, and
    # a token that takes one anyway is refused in simulation (docs/simulation.md).
    transfer_fee_bps: int | None = Field(default=None, ge=0, le=10_000)
    # What the code was judged on: "sources" (bound to the deployed code, Slither ran), or
    # "bytecode" (no sources: Mythril on each runtime code alone, one record per code in
    # `mythril`; only under the policy's `[sources] when_missing = "bytecode-only"`). Signed
    # with the rest: it cannot be flipped after approval. "sources" (the default) and an
    # empty `mythril` are left out of the entry and of its hash, so entries signed before
    # these fields existed keep their signatures.
    review_basis: ReviewBasis = "sources"
    mythril: list[MythrilSummary] = []

    @model_validator(mode="after")
    def _fee_only_on_tokens(self) -> Self:
        if self.transfer_fee_bps is not None and self.role is not Role.TOKEN:
            raise ValueError("transfer_fee_bps is declared only on token entries")
        return self

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            if self.transfer_fee_bps is None:
                data.pop("transfer_fee_bps", None)
            if self.review_basis == "sources":
                data.pop("review_basis", None)
            if not self.mythril:
                data.pop("mythril", None)
        return data

    @property
    def bytecode_only(self) -> bool:
        return self.review_basis == "bytecode"

    def review_line(self) -> str | None:
        """For a bytecode-only entry, the line that says so; None for a source review."""
        if not self.bytecode_only:
            return None
        found = "; ".join(m.describe() for m in self.mythril)
        return bytecode_review_line(found or "no result recorded")

    def function(self, selector: str) -> AllowedFunction | None:
        selector = selector.lower()
        return next((f for f in self.functions if f.selector == selector), None)


class ActiveAllowlist(BaseModel):
    """The verified, in-memory view the guard reads: only entries whose approvals hold."""

    model_config = ConfigDict(frozen=True)

    chain_id: int
    entries: dict[str, AllowlistEntry]  # checksummed address -> entry

    def get(self, address: str) -> AllowlistEntry | None:
        from eth_utils import to_checksum_address

        try:
            return self.entries.get(to_checksum_address(address))
        except ValueError:
            return None

    def is_token(self, address: str) -> bool:
        entry = self.get(address)
        return entry is not None and entry.role in (Role.TOKEN, Role.WRAPPED_NATIVE)

    def transfer_fees(self) -> dict[str, int]:
        """token -> the transfer fee (bps) its active entry declares, for every such token."""
        return {
            a: e.transfer_fee_bps
            for a, e in self.entries.items()
            if e.transfer_fee_bps is not None and not e.revoked
        }

    def transfer_fee_bps(self, address: str) -> int | None:
        """The transfer fee an active token entry declares (None: none declared)."""
        entry = self.get(address)
        if entry is None or entry.revoked:
            return None
        return entry.transfer_fee_bps
