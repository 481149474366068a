"""The allowlist on disk (`<root>/<chain_id>/<address>.toml`) and the agent's view of it.

`load_active_allowlist` is what the agent calls at start: every entry of the chain must
parse, sit at the path its content names, and pass the offline checks (M-of-N reviewer
signatures over its canonical hash, audits per policy, Slither findings triaged); if any
does not, the agent refuses to start. Revoked entries are never active and need no
signatures (revoking only ever narrows what the agent may do).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry
from defiagent.allowlist.policy import Policy, load_policy
from defiagent.allowlist.reviewers import REVIEWERS_FILE, Reviewers, load_reviewers
from defiagent.allowlist.tomlio import read_entry, write_entry
from defiagent.errors import ConfigError, DefiagentError, Refused
from defiagent.types import parse_address

ROOT_ENV = "DEFIAGENT_ALLOWLIST_DIR"
DEFAULT_ROOT = "contracts_allowlist"


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def entry_path(root: Path, chain_id: int, address: str) -> Path:
    return Path(root) / str(chain_id) / f"{to_checksum_address(address)}.toml"


def iter_entry_paths(root: Path, chain_id: int | None = None) -> Iterator[Path]:
    root = Path(root)
    if not root.is_dir():
        return
    for chain_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        if chain_id is not None and int(chain_dir.name) != chain_id:
            continue
        yield from sorted(chain_dir.glob("*.toml"))


def structure_problems(path: Path, entry: AllowlistEntry) -> list[str]:
    """The file must sit where its content says: <chain_id>/<checksummed address>.toml."""
    problems = []
    if path.parent.name != str(entry.chain_id):
        problems.append(f"{path} holds an entry for chain {entry.chain_id}, not {path.parent.name}")
    stem = path.stem
    if not is_address(stem) or to_checksum_address(stem) != entry.address or stem != entry.address:
        problems.append(
            f"{path} holds the entry for {entry.address}: the file name must be that address"
        )
    return problems


def require_root(root: Path, *, writes: bool = False) -> Path:
    """The allowlist folder, which must exist; before anything is written into it, it must
    hold reviewers.toml. Nothing creates a new allowlist root implicitly: a mistyped
    --allowlist or DEFIAGENT_ALLOWLIST_DIR is refused instead of starting an empty one."""
    root = Path(root)
    fix = f"or fix --allowlist / {ROOT_ENV}"
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(
            f"the allowlist folder {root} {what}; create it with its {REVIEWERS_FILE} "
            f"(docs/allowlist.md) {fix}"
        )
    if writes and not (root / REVIEWERS_FILE).is_file():
        raise ConfigError(
            f"the allowlist folder {root} has no {REVIEWERS_FILE}, so nothing proposed there "
            f"could be approved; write {REVIEWERS_FILE} there first (docs/allowlist.md) {fix}"
        )
    return root


def resolve_entry(root: Path, ref: str, chain_id: int | None = None) -> Path:
    """An entry by path, or by address (searching every chain unless one is given)."""
    candidate = Path(ref)
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    if is_address(ref):  # eth_utils' test: a wrong EIP-55 checksum still passes it
        ref = parse_address(ref, "ENTRY")
        hits = [p for p in iter_entry_paths(root, chain_id) if p.stem.lower() == ref.lower()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError(f"{ref} has entries on several chains: give --chain-id or the path")
        raise ConfigError(f"no allowlist entry {ref} under {root}")
    if candidate.suffix == ".toml":
        raise ConfigError(f"the entry file {ref} does not exist")
    hint = "; ENS names are not resolved" if ref.lower().endswith(".eth") else ""
    raise ConfigError(
        f"ENTRY {ref!r} is neither an Ethereum address (0x and 40 hex digits{hint}) "
        "nor an entry file"
    )


@dataclass
class LoadedEntry:
    path: Path
    entry: AllowlistEntry


def load_entries(root: Path, chain_id: int | None = None) -> list[LoadedEntry]:
    out = []
    seen: dict[tuple[int, str], Path] = {}
    for path in iter_entry_paths(root, chain_id):
        entry = read_entry(path)
        key = (entry.chain_id, entry.address)
        if key in seen:
            raise ConfigError(f"{path} and {seen[key]} are entries for the same contract")
        seen[key] = path
        out.append(LoadedEntry(path, entry))
    return out


def entry_problems(
    loaded: LoadedEntry, *, policy: Policy, reviewers: Reviewers, today: date
) -> list[str]:
    """Everything that keeps an entry from being active, judged without a chain."""
    from defiagent.allowlist.verify import offline_outcomes  # vetting imports are heavy

    problems = structure_problems(loaded.path, loaded.entry)
    if loaded.entry.revoked:
        return problems
    problems += [
        o.reason
        for o in offline_outcomes(loaded.entry, policy=policy, reviewers=reviewers, today=today)
        if o.status == "fail"
    ]
    return problems


def load_active_allowlist(
    root: Path,
    chain_id: int,
    *,
    reviewers_sha256: str | None = None,
    today: date | None = None,
) -> ActiveAllowlist:
    """The approved entries of one chain; raises Refused if any entry does not hold.

    `reviewers_sha256` (or env DEFIAGENT_REVIEWERS_SHA256) pins the reviewers file, the
    root of trust; pin it outside the allowlist folder, e.g. in the deployment config.
    """
    root = Path(root)
    try:
        reviewers = load_reviewers(root, expected_sha256=reviewers_sha256)
        policy = load_policy(root)
        loaded = load_entries(root, chain_id)
    except Refused:
        raise
    except DefiagentError as exc:
        raise Refused(f"the allowlist at {root} cannot be loaded: {exc}") from exc
    today = today or datetime.now(UTC).date()
    active: dict[str, AllowlistEntry] = {}
    for item in loaded:
        problems = entry_problems(item, policy=policy, reviewers=reviewers, today=today)
        if problems:
            raise Refused(
                f"allowlist entry {item.path.name} ({item.entry.name}) is not valid: {problems[0]}"
                + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")
            )
        if not item.entry.revoked:
            active[item.entry.address] = item.entry
    return ActiveAllowlist(chain_id=chain_id, entries=active)


def save_entry(path: Path, entry: AllowlistEntry) -> None:
    write_entry(path, entry)
