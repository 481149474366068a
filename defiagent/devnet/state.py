"""DIR/devnet.json: what `devnet up` started and deployed, read by `down`, `status` and the
traders. Written after each process starts, so a `devnet up` killed half-way still leaves
`devnet down` what it needs to stop it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.devnet.processes import ProcessRecord, is_running
from defiagent.errors import ConfigError
from defiagent.operator.files import check_private, write_atomic

STATE_FILE = "devnet.json"
VERSION = 1


class DevnetState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = VERSION
    out: str
    rpc_url: str
    port: int
    chain_id: int | None = None
    anvil: ProcessRecord
    traders: ProcessRecord | None = None
    trade_seconds: float = 3.0
    ready: bool = False  # False until every step of `up` is done
    # Protocol name -> its deployment (addresses), as the registry's devnet step returned it.
    deployments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    accounts: dict[str, str] = Field(default_factory=dict)  # agent, operator, reviewers
    files: dict[str, str] = Field(default_factory=dict)  # what -> path, for people

    def running(self) -> dict[str, bool]:
        out = {"anvil": is_running(self.anvil)}
        if self.traders is not None:
            out["traders"] = is_running(self.traders)
        return out

    def any_running(self) -> bool:
        return any(self.running().values())


def state_path(out: Path) -> Path:
    return out / STATE_FILE


def save(state: DevnetState) -> None:
    # Addresses, pids and paths: nothing secret, but kept private like the rest of DIR.
    path = state_path(Path(state.out))
    write_atomic(path, state.model_dump_json(indent=2) + "\n", mode=0o600, what=str(path))


def load(out: Path) -> DevnetState | None:
    """The devnet recorded in `out`, or None when there is none."""
    path = state_path(out)
    if not path.is_file():
        return None
    # It names the pids `down` signals: one that others could have written is not trusted.
    check_private(path, "devnet state file", forbidden=0o022)
    try:
        return DevnetState.model_validate_json(path.read_text())
    except (OSError, ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"{path} is not a devnet state file ({first})",
            remedy="stop its processes by hand if any are left, then remove the file",
        ) from None
