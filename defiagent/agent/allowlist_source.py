"""Where the agent gets its ActiveAllowlist: the allowlist package's verifier, nothing else.

`load_active_allowlist(root, chain_id)` checks every entry's reviewer signatures and
returns only the entries that hold; if that fails, the agent does not start. Signatures
are judged offline, so `verify_on_chain(allowlist, rpc)` then checks on chain what each
active entry pins (its codehash; for a proxy its implementation, the implementation's
codehash, beacon and admin): an upgrade or a redeploy since approval refuses the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defiagent.allowlist.models import ActiveAllowlist
from defiagent.errors import ConfigError, DefiagentError, InfraError, Refused


def load_allowlist(root: Path, chain_id: int) -> ActiveAllowlist:
    try:
        from defiagent.allowlist.store import load_active_allowlist
    except ImportError as exc:
        raise ConfigError(
            "the allowlist verifier (defiagent.allowlist.store) is not available, "
            "so no allowlist can be trusted"
        ) from exc
    if not Path(root).is_dir():
        raise ConfigError(f"the allowlist directory {root} does not exist")
    try:
        allowlist = load_active_allowlist(Path(root), chain_id)
    except DefiagentError:
        raise
    except Exception as exc:
        raise Refused(f"the allowlist in {root} could not be verified: {exc}") from exc
    if not allowlist.entries:
        raise Refused(f"no entry in {root} is active for chain {chain_id}: nothing may be called")
    return allowlist


def verify_on_chain(allowlist: ActiveAllowlist, rpc: Any) -> None:
    """Refuse (one sentence naming the entry and what changed) unless every active entry's
    pins hold on chain now, all read at one block: the same on-chain checks as
    `defiagent allowlist verify --rpc-url`. `rpc` is an RPC URL, a JsonRpcClient (a
    BatchRpcClient) or a web3.Web3. An RPC that cannot be read raises InfraError.
    """
    from defiagent.allowlist.verify import on_chain_problems
    from defiagent.vetting.onchain import ChainReader

    reader = ChainReader(rpc)  # every read below at this one block
    try:
        if reader.chain_id != allowlist.chain_id:
            raise Refused(
                f"the allowlist is for chain {allowlist.chain_id} but the RPC is on chain "
                f"{reader.chain_id}, so its code pins cannot be checked"
            )
        for entry in sorted(allowlist.entries.values(), key=lambda e: (e.name, e.address)):
            if entry.revoked:
                continue
            try:
                problems = on_chain_problems(entry, reader)
            except InfraError as exc:
                raise InfraError(
                    f"the code of allowlist entry {entry.name} ({entry.address}) could not be "
                    f"read at start: {exc}"
                ) from exc
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise Refused(
                    f"allowlist entry {entry.name} ({entry.address}) no longer matches the "
                    f"chain at block {reader.block}: {problems[0]}{more}"
                )
    finally:
        reader.close()
