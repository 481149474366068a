"""Strategy pins: the operator's signed record of each strategy's code and params.

The defence against clone-and-hijack (someone swaps a strategy's code, a model file or a
param under a running config): the operator pins every configured strategy with
`defiagent strategy pin -c agent.toml --key KEYSTORE`, which hashes its code, the files it
loads and its params and signs the lot with the operator's key (EIP-191 personal_sign).
The agent and `defiagent strategy verify` refuse a strategy whose code, files, params or
source differ from its pin, and say which file or which param changed.

The pins file (JSON, `pins_file` in agent.toml, default strategy-pins.json beside it):

    {
      "version": 1,
      "pins": {
        "<name>": {
          "name": "<name>",
          "kind": "builtin" | "path" | "command",
          "source": "builtin:mean-reversion" | "path:/abs/strat.py" | "command:<argv as shell>",
          "argv": [...] | null,
          "code_sha256": "<hex>",
          "file_digests": {"<absolute path or package path>": "<hex>", ...},
          "params_sha256": "<hex>",
          "params": {...},
          "pinned_at": "2025-01-01T00:00:00+00:00"
        }
      },
      "signer": "0xOperator",
      "signature": "0x<65 bytes>"
    }

It names no chain: a strategy's code is the same whichever chain the agent trades on. The
signature covers `signing_message(version, signer, pins)`: a short text naming the signer
and the sha256 of the canonical JSON of the version and the pins, so changing any byte of
any pin (a digest edited by hand) or the signer breaks it. Params are stored in the clear
(they are not secret: secrets are references in `secrets`, never in params) so a mismatch
names the keys that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

import defiagent
from defiagent.errors import ConfigError, InfraError, Refused
from defiagent.operator.files import write_atomic
from defiagent.strategy.config import BUILTIN_DIR, StrategyConfig
from defiagent.types import Address

if TYPE_CHECKING:
    from defiagent.config import AgentConfig

PINS_VERSION: Final = 1
AUDIT_KIND = "strategy-pin"
PIN_COMMAND = "defiagent strategy pin -c agent.toml --key KEYSTORE"
MAX_TREE_FILES = 50_000  # a directory this large is not a strategy: refuse, never truncate
_CHUNK = 1 << 20
# Built-ins are named by their place in the package, e.g. defiagent/strategy/builtin/llm.py.
_BUILTIN_LABEL = BUILTIN_DIR.relative_to(Path(defiagent.__file__).parent.parent).as_posix()

SourceKind = Literal["builtin", "path", "command"]


# --- canonical encodings ----------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII; ints in decimal (Python's json never uses
    exponents for ints). Dates and other TOML values become the JSON the strategy sees."""
    try:
        return json.dumps(
            to_jsonable_python(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=True,  # TOML has inf and nan: encoded as Infinity/NaN, deterministically
        ).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"a value cannot be encoded as JSON for pinning: {exc}") from exc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def params_digest(params: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a strategy's params."""
    return _sha256(canonical_json(params))


def _short(digest: str) -> str:
    return digest[:12] + "…"


# --- code digests ----------------------------------------------------------------------


class CodeDigest(BaseModel):
    """What a strategy runs: its source and the sha256 of every file that makes it up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SourceKind
    source: str
    argv: list[str] | None = None
    sha256: str
    file_digests: dict[str, str]


def _label(path: Path) -> str:
    """How a file is named in a pin: absolute, or package-relative for built-ins (so a
    reinstall of the package elsewhere does not look like a change)."""
    absolute = Path(os.path.abspath(path))
    for base in (BUILTIN_DIR, BUILTIN_DIR.resolve()):
        if absolute.is_relative_to(base):
            return f"{_BUILTIN_LABEL}/{absolute.relative_to(base).as_posix()}"
    return absolute.as_posix()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InfraError(f"{path} cannot be read for pinning: {exc}") from exc
    return digest.hexdigest()


def _tree_digests(root: Path, owner: str) -> dict[str, str]:
    """Every entry under the directory `root`, by label: regular files by content, symlinks
    that stay inside the tree by their target text. A symlink that leaves the tree, and any
    special file (fifo, socket, device), is refused. Empty directories hold no code and
    leave no trace. Only `__pycache__` directories are skipped: Python writes them itself
    when it imports the code, so they would make every pin go stale. (Python trusts a cached
    .pyc whose recorded source mtime and size match, so whoever runs the code must keep it
    from reading these: PYTHONPYCACHEPREFIX pointing elsewhere does.) A `*.pyc` anywhere
    else is pinned like any file: Python imports a lone legacy .pyc without its source."""
    real_root = root.resolve()
    out: dict[str, str] = {}
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise InfraError(f"{directory} cannot be listed for pinning: {exc}") from exc
        for entry in entries:
            path = Path(entry.path)
            try:
                mode = os.lstat(path).st_mode
            except OSError as exc:
                raise InfraError(f"{path} cannot be read for pinning: {exc}") from exc
            if stat.S_ISLNK(mode):
                target = path.resolve()
                if not (target == real_root or target.is_relative_to(real_root)):
                    raise Refused(
                        f"{owner}: {path} is a symlink leaving {root} (to {target}); "
                        "copy the file into the directory instead"
                    )
                out[_label(path)] = _sha256(b"symlink:" + os.fsencode(os.readlink(path)))
            elif stat.S_ISDIR(mode):
                if entry.name != "__pycache__":
                    stack.append(path)
            elif stat.S_ISREG(mode):
                out[_label(path)] = _file_sha256(path)
            else:
                raise Refused(f"{owner}: {path} is a special file, not code or data")
            if len(out) > MAX_TREE_FILES:
                raise Refused(f"{owner}: {root} holds more than {MAX_TREE_FILES} files")
    return out


def _path_digests(path: Path, owner: str, what: str) -> dict[str, str]:
    """A file (its bytes) or a directory (its tree), following a symlink the operator named."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{owner}: {what} {path} does not exist") from None
    except OSError as exc:
        raise InfraError(f"{owner}: {what} {path} cannot be read: {exc}") from exc
    if stat.S_ISDIR(mode):
        return _tree_digests(path, owner)
    if stat.S_ISREG(mode):
        return {_label(path): _file_sha256(path)}
    raise Refused(f"{owner}: {what} {path} is not a regular file or directory")


def _executable(argv0: str, owner: str) -> Path:
    if "/" in argv0:
        return Path(argv0)
    found = shutil.which(argv0)
    if found is None:
        raise ConfigError(f"{owner}: its executable {argv0!r} is not on PATH")
    return Path(found)


def code_digest(sc: StrategyConfig) -> CodeDigest:
    """The sha256 of everything `sc` runs, with a digest per file so a change can be named.

    builtin/path: the SDK file's bytes, or a directory's whole tree. command: the argv
    itself, the executable (argv[0], resolved on PATH) and every absolute argv element that
    is an existing file or directory (`resolved()` makes arguments naming files next to the
    config absolute). Plus every file in `sc.files`. `sha256` covers the source and every
    (label, digest) pair, so a renamed, added or removed file changes it too.
    """
    owner = f"strategy {sc.name}"
    digests: dict[str, str] = {}
    argv: list[str] | None = None
    builtin = sc.builtin_name
    if builtin is not None:
        kind: SourceKind = "builtin"
        source = f"builtin:{builtin}"
        code = sc.code_path()
        assert code is not None  # a built-in's file in the package
        digests |= _path_digests(code, owner, "the built-in code")
    elif sc.path is not None:
        kind = "path"
        source = f"path:{Path(os.path.abspath(sc.path)).as_posix()}"
        digests |= _path_digests(sc.path, owner, "the code")
    else:
        kind = "command"
        argv = list(sc.command or [])
        source = f"command:{shlex.join(argv)}"
        digests |= _path_digests(_executable(argv[0], owner), owner, "the executable")
        for arg in argv[1:]:
            if os.path.isabs(arg) and os.path.exists(arg):
                digests |= _path_digests(Path(arg), owner, "the command argument")
    for extra in sc.files:
        digests |= _path_digests(extra, owner, "the file")
    body = {"kind": kind, "source": source, "argv": argv, "files": digests}
    return CodeDigest(
        kind=kind,
        source=source,
        argv=argv,
        sha256=_sha256(canonical_json(body)),
        file_digests=dict(sorted(digests.items())),
    )


# --- pins and the pins file ------------------------------------------------------------


class StrategyPin(BaseModel):
    """One strategy as the operator pinned it."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    name: str
    kind: SourceKind
    source: str
    argv: list[str] | None = None
    code_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    file_digests: dict[str, str]
    params_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    params: dict[str, Any]
    pinned_at: str


class PinFile(BaseModel):
    """The signed pins of every configured strategy. Chain-agnostic: it names no chain."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    version: Literal[1] = PINS_VERSION
    pins: dict[str, StrategyPin]
    signer: Address
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class MessageSigner(Protocol):
    """Any of the agent's signers (keystore, Ledger, KMS): EIP-191 personal_sign."""

    @property
    def address(self) -> str: ...

    def sign_message(self, message: bytes) -> bytes: ...


def _pin_json(pin: StrategyPin) -> Any:
    return json.loads(canonical_json(pin.model_dump(mode="python")))


def pin_id(pin: StrategyPin) -> str:
    """A short id for a pin (first 12 hex of sha256 over its canonical JSON): what the
    audit log and reports show."""
    return _sha256(canonical_json(pin.model_dump(mode="python")))[:12]


def pins_digest(version: int, pins: dict[str, StrategyPin]) -> str:
    body = {"version": version, "pins": {name: _pin_json(p) for name, p in pins.items()}}
    return _sha256(canonical_json(body))


def signing_message(version: int, signer: str, pins: dict[str, StrategyPin]) -> bytes:
    """The text the operator signs (EIP-191 personal_sign): short enough to show on a Ledger."""
    return (
        "defiagent strategy pins\n"
        f"version: {version}\n"
        f"signer: {to_checksum_address(signer)}\n"
        f"pins sha256: {pins_digest(version, pins)}"
    ).encode()


def recover_signer(pinfile: PinFile) -> str:
    """The address the signature recovers to (Refused when it recovers to none)."""
    message = signing_message(pinfile.version, pinfile.signer, pinfile.pins)
    try:
        return Account.recover_message(
            encode_defunct(primitive=message), signature=bytes.fromhex(pinfile.signature[2:])
        )
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise Refused(
            f"the signature of the strategy pins is not a valid signature: {exc}"
        ) from exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _same_content(a: StrategyPin, b: StrategyPin) -> bool:
    return _pin_json(a.model_copy(update={"pinned_at": ""})) == _pin_json(
        b.model_copy(update={"pinned_at": ""})
    )


def build_pins(
    cfg: AgentConfig, *, previous: PinFile | None = None, now: str | None = None
) -> dict[str, StrategyPin]:
    """An (unsigned) pin of every configured strategy as it is now. A pin identical to one in
    `previous` keeps its pinned_at, so re-pinning unchanged strategies keeps their pin ids."""
    stamp = now or _now()
    pins: dict[str, StrategyPin] = {}
    for sc in cfg.strategy_configs():
        digest = code_digest(sc)
        params = json.loads(canonical_json(sc.params))
        pin = StrategyPin(
            name=sc.name,
            kind=digest.kind,
            source=digest.source,
            argv=digest.argv,
            code_sha256=digest.sha256,
            file_digests=digest.file_digests,
            params_sha256=params_digest(sc.params),
            params=params,
            pinned_at=stamp,
        )
        old = previous.pins.get(sc.name) if previous is not None else None
        if old is not None and _same_content(old, pin):
            pin = pin.model_copy(update={"pinned_at": old.pinned_at})
        pins[sc.name] = pin
    return pins


def check_pin_signer(cfg: AgentConfig, address: str) -> str:
    """Refused unless `address` is one of the config's pin_signers; returns it checksummed."""
    if not cfg.pin_signers:
        raise Refused(
            "no pin_signers are configured, so no strategy pin can be trusted; add the "
            "operator's address to pin_signers in agent.toml"
        )
    address = to_checksum_address(address)
    if address not in cfg.pin_signers:
        raise Refused(
            f"{address} is not one of pin_signers ({', '.join(cfg.pin_signers)}), so its "
            "strategy pins would not count; sign with an operator key listed there"
        )
    return address


def sign_pins(pins: dict[str, StrategyPin], key_signer: MessageSigner) -> PinFile:
    """Sign `pins` with the operator's key (EIP-191 personal_sign)."""
    address = to_checksum_address(key_signer.address)
    signature = bytes(key_signer.sign_message(signing_message(PINS_VERSION, address, pins)))
    pinfile = PinFile(pins=pins, signer=address, signature="0x" + signature.hex())
    if recover_signer(pinfile) != address:
        raise Refused(
            f"the signer's signature over the strategy pins does not recover to {address}"
        )
    return pinfile


def pin_strategies(
    cfg: AgentConfig, key_signer: MessageSigner, *, previous: PinFile | None = None
) -> PinFile:
    """Pin every configured strategy, signed by `key_signer` (which must be a pin signer)."""
    check_pin_signer(cfg, key_signer.address)
    return sign_pins(build_pins(cfg, previous=previous), key_signer)


def dump_pins(pinfile: PinFile) -> str:
    data = pinfile.model_dump(mode="python")
    return json.dumps(to_jsonable_python(data), indent=2, sort_keys=True, allow_nan=True) + "\n"


def write_pins(path: Path | str, pinfile: PinFile) -> None:
    """Write the pins file by rename (readers see the old or the new, never half), mode
    0644: it holds no secret, and the signature is what protects it."""
    path = Path(path)
    # Not secret (hashes, params, a signature): readable by CI and reviewers.
    write_atomic(path, dump_pins(pinfile), mode=0o644, what=f"the strategy pins file {path}")


def read_pins(path: Path | str) -> PinFile:
    """Parse a pins file (its signature is not checked here: see verify_pins)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Refused(
            f"the strategy pins file {path} does not exist, so no strategy may start; "
            f"run `{PIN_COMMAND}`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the strategy pins file {path} cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the strategy pins file {path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and data.get("version") not in (None, PINS_VERSION):
        raise ConfigError(
            f"the strategy pins file {path} has version {data.get('version')!r}; "
            f"this agent reads version {PINS_VERSION}"
        )
    try:
        pinfile = PinFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"the strategy pins file {path} is malformed at {where}: {first['msg']}"
        ) from None
    for name, pin in pinfile.pins.items():
        if pin.name != name:
            raise ConfigError(
                f"the strategy pins file {path} files the pin of {pin.name} as {name}"
            )
    return pinfile


# --- verification ----------------------------------------------------------------------


def _code_changes(pin: StrategyPin, now: CodeDigest) -> str:
    parts, added = [], []
    for label, digest in now.file_digests.items():
        old = pin.file_digests.get(label)
        if old is None:
            added.append(label)
        elif old != digest:
            parts.append(
                f"the code of {label} changed since it was pinned "
                f"(sha256 {_short(old)} now {_short(digest)})"
            )
    removed = [label for label in pin.file_digests if label not in now.file_digests]
    if added:
        parts.append(f"{', '.join(added)} {'was' if len(added) == 1 else 'were'} added")
    if removed:
        parts.append(f"{', '.join(removed)} {'was' if len(removed) == 1 else 'were'} removed")
    if not parts:  # same files, yet another digest: the pin itself is inconsistent
        parts.append(
            f"its code digest differs from the pin (sha256 {_short(pin.code_sha256)} "
            f"now {_short(now.sha256)})"
        )
    return "; ".join(parts)


def _params_changes(pinned: dict[str, Any], now: dict[str, Any]) -> str:
    changed = sorted(
        k for k in pinned.keys() & now.keys() if canonical_json(pinned[k]) != canonical_json(now[k])
    )
    added = sorted(now.keys() - pinned.keys())
    removed = sorted(pinned.keys() - now.keys())
    parts = [f"{k} changed" for k in changed]
    parts += [f"{k} added" for k in added]
    parts += [f"{k} removed" for k in removed]
    return ", ".join(parts) or "their encoding changed"


def verify_strategy(sc: StrategyConfig, pin: StrategyPin | None, *, pins_path: Path) -> str:
    """The pin id when `sc` is exactly what `pin` pins; Refused with the difference if not."""
    who = f"strategy {sc.name}"
    if pin is None:
        raise Refused(
            f"{who} has no pin in {pins_path}, so it may not start; pin it with `{PIN_COMMAND}`"
        )
    now = code_digest(sc)
    if (pin.kind, pin.source, pin.argv) != (now.kind, now.source, now.argv):
        raise Refused(
            f"{who}: its source changed since it was pinned (pinned {pin.source}, now "
            f"{now.source}); re-pin it with `{PIN_COMMAND}` if that is intended"
        )
    if pin.code_sha256 != now.sha256 or pin.file_digests != now.file_digests:
        raise Refused(f"{who}: {_code_changes(pin, now)}")
    if params_digest(pin.params) != pin.params_sha256:
        raise Refused(f"{who}: its pin's params do not match the pin's params digest")
    if params_digest(sc.params) != pin.params_sha256:
        raise Refused(
            f"{who}: its params changed since it was pinned: "
            f"{_params_changes(pin.params, json.loads(canonical_json(sc.params)))}"
        )
    return pin_id(pin)


def verify_signature(cfg: AgentConfig, pinfile: PinFile, *, pins_path: Path) -> str:
    """The signer's address when the signature holds and it is one of pin_signers."""
    recovered = recover_signer(pinfile)
    if recovered != pinfile.signer:
        raise Refused(
            f"the strategy pins file {pins_path} was changed after it was signed (its "
            f"signature recovers to {recovered}, not to its signer {pinfile.signer})"
        )
    if not cfg.pin_signers:
        raise Refused(
            "no pin_signers are configured, so no strategy pin can be trusted; add the "
            "operator's address to pin_signers in agent.toml"
        )
    if pinfile.signer not in cfg.pin_signers:
        raise Refused(
            f"the strategy pins file {pins_path} is signed by {pinfile.signer}, which is not "
            f"one of pin_signers ({', '.join(cfg.pin_signers)})"
        )
    return pinfile.signer


def verify_pins(cfg: AgentConfig) -> dict[str, str]:
    """name -> pin id for every configured strategy when each matches its signed pin.

    Refused (one sentence) when no pin_signers are configured, the pins file is missing,
    its signature does not hold or is not a pin signer's, a strategy has no pin, or its
    source, code, files or params differ from the pin. ConfigError when the file is not a
    pins file. Pins of strategies no longer configured are ignored.
    """
    if not cfg.pin_signers:
        raise Refused(
            "no pin_signers are configured, so no strategy pin can be trusted; add the "
            "operator's address to pin_signers in agent.toml and pin with "
            f"`{PIN_COMMAND}`"
        )
    path = Path(cfg.pins_file)
    pinfile = read_pins(path)
    verify_signature(cfg, pinfile, pins_path=path)
    return {
        sc.name: verify_strategy(sc, pinfile.pins.get(sc.name), pins_path=path)
        for sc in cfg.strategy_configs()
    }
