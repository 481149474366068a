"""Where the agent gets its ActiveAllowlist: the allowlist package's verifier, nothing else.

`load_active_allowlist(root, chain_id)` checks every entry's reviewer signatures and
returns only the entries that hold; if that fails, the agent does not start.
"""

from __future__ import annotations

from pathlib import Path

from defiagent.allowlist.models import ActiveAllowlist
from defiagent.errors import ConfigError, DefiagentError, Refused


def load_allowlist(root: Path, chain_id: int) -> ActiveAllowlist:
    try:
        from defiagent.allowlist.store import load_active_allowlist  # type: ignore[import-not-found]
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
