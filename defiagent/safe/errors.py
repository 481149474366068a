"""The guard's custom errors, as sentences a person can read."""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from defiagent.safe import artifacts

_KIND_NAMES = {
    1: "recipient must be the Safe",
    2: "spender must be an allowlisted router or spender",
    3: "amount above the cap",
    4: "value must equal the allowlisted one",
    5: "every token of the path must be allowlisted",
    6: "token must be allowlisted",
}


def _errors() -> dict[bytes, tuple[str, list[str]]]:
    out = {}
    for item in artifacts.guard().abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item.get("inputs", [])]
            sig = f"{item['name']}({','.join(types)})"
            out[function_signature_to_4byte_selector(sig)] = (item["name"], types)
    return out


def guard_error(
    revert_data: str | bytes | None, names: dict[str, str] | None = None
) -> tuple[str, str] | None:
    """(error name, sentence) when `revert_data` is one of the guard's errors, else None.
    `names`: address or selector (0x...) -> what to call it in the sentence."""
    if revert_data is None:
        return None
    raw = bytes.fromhex(revert_data[2:]) if isinstance(revert_data, str) else bytes(revert_data)
    known = _errors().get(raw[:4])
    if known is None:
        return None
    name, types = known
    try:
        args: list[Any] = list(abi_decode(types, raw[4:]))
    except Exception:
        return name, f"the guard refused the call ({name})"
    labels = {k.lower(): v for k, v in (names or {}).items()}
    for i, t in enumerate(types):
        if t == "address":
            args[i] = to_checksum_address(args[i])
        elif t.startswith("bytes"):
            args[i] = "0x" + bytes(args[i]).hex()
        if t == "address" or t == "bytes4":
            label = labels.get(str(args[i]).lower())
            args[i] = f"{label} ({args[i]})" if label else args[i]
    text = {
        "NotAgent": lambda a: f"{a[0]} is not the agent key the guard accepts",
        "NotSafe": lambda a: f"{a[0]} is not the Safe: only the owners change the guard",
        "OperationRefused": lambda a: f"operation {a[0]} is refused",
        "DelegatecallRefused": lambda a: (
            f"a delegatecall to {a[0]} is refused "
            "(only the pinned MultiSendCallOnly, and only plain calls inside it)"
        ),
        "TargetNotAllowed": lambda a: f"{a[0]} is not an allowlisted target",
        "CodehashMismatch": lambda a: f"the code of {a[0]} is {a[2]}, not the pinned {a[1]}",
        "FunctionNotAllowed": lambda a: f"function {a[1]} of {a[0]} is not allowlisted",
        "ValueRefused": lambda a: f"sending {a[1]} wei to {a[0]} is not allowed",
        "ArgumentRefused": lambda a: (
            f"argument {a[2]} of {a[1]} on {a[0]} is refused: "
            + _KIND_NAMES.get(a[3], f"condition {a[3]}")
        ),
        "MalformedBatch": lambda a: "the MultiSend batch is malformed",
        "MalformedConfig": lambda a: "the configuration is malformed",
        "ZeroAgent": lambda a: "the agent cannot be the zero address",
    }.get(name)
    return name, f"the guard refused: {text(args)}" if text else name
