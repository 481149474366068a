"""`[[strategies]]` in agent.toml: who a strategy is, where its code is, how it is boxed in.

The strategy's identity is `name`, captured here at start: it keys every per-strategy limit,
rate window, pause, position and drift monitor, and nothing the strategy sends can change it.
Its code is one of `builtin` (a strategy shipped in the package), `path` (an SDK file, or a
directory run through its `__main__.py`) or `command` (any executable speaking
docs/strategy-protocol.md). A config naming a built-in strategy with no code (`name =
"mean-reversion"`) runs that built-in, so configs written before the sandbox keep working.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from defiagent.strategy.mandate import Mandate

BUILTIN_DIR = Path(__file__).parent / "builtin"
# Built-in strategies by name -> their SDK file in the package (run like any `path`).
BUILTINS: dict[str, str] = {
    "mean-reversion": "mean_reversion.py",
    "rogue": "rogue.py",
    "llm": "llm.py",
    "model-classifier": "model_classifier.py",  # trained by `defiagent strategy train`
    "treasury": "treasury.py",  # idle funds parked in an ERC-4626 vault
}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|keyring:[^/\s]+/[^\s]+)$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StrategyLimits(_Section):
    """What one strategy child may use. Beyond any of them its tick is refused."""

    tick_timeout_seconds: float = Field(
        default=2.0, gt=0, le=300, description="wall time for one answer (CPU per tick)"
    )
    start_timeout_seconds: float = Field(
        default=20.0, gt=0, le=600, description="time to start and answer the hello"
    )
    memory_mb: int = Field(default=1024, ge=64, le=65_536, description="address space")
    max_open_files: int = Field(default=64, ge=16, le=4096)
    cpu_seconds: int = Field(
        default=3_600, ge=1, le=86_400, description="CPU over the child's life, then restarted"
    )
    max_answer_bytes: int = Field(default=1_048_576, ge=1_024, le=64 * 1_048_576)
    max_intents: int = Field(default=50, ge=0, le=200, description="per tick; the rest dropped")
    max_failures: int = Field(
        default=3, ge=1, le=100, description="failed ticks in a row before a pause"
    )
    pause_seconds: float = Field(default=300.0, ge=0, le=86_400)


class StrategyConfig(_Section):
    name: str = "mean-reversion"
    builtin: str | None = Field(default=None, description="a strategy shipped in the package")
    path: Path | None = Field(default=None, description="an SDK file or a directory")
    command: list[str] | None = Field(default=None, description="any executable and its args")
    params: dict[str, Any] = Field(default_factory=dict)
    files: list[Path] = Field(
        default_factory=list,
        description="model or data files it loads: pinned with its code, read-only inside",
    )
    sandbox: Literal["bwrap", "none"] = Field(
        default="bwrap", description='"none" only for development: announced and audited'
    )
    network: list[str] = Field(
        default_factory=list,
        description="the only endpoints it may reach (scheme://host[:port]); default none",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="name -> a secret reference (docs/secrets.md), sent in the hello, never logged",
    )
    limits: StrategyLimits = Field(default_factory=StrategyLimits)
    risk: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="this strategy's own limits: [risk.*] fields that differ for it",
    )
    mandate: Mandate | None = Field(
        default=None, description="the envelope its live behaviour must stay in (drift alerts)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "must be 1-64 lowercase letters, digits, '-', '_' or '.', starting with a "
                "letter or digit"
            )
        return value

    @field_validator("builtin")
    @classmethod
    def _builtin(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTINS:
            raise ValueError(f"unknown built-in strategy; known: {', '.join(sorted(BUILTINS))}")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].strip()):
            raise ValueError("must name an executable")
        return value

    @field_validator("network")
    @classmethod
    def _network(cls, value: list[str]) -> list[str]:
        for url in value:
            endpoint(url)  # raises ValueError with a sentence
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: dict[str, str]) -> dict[str, str]:
        from defiagent.secrets.reference import FORMS_TEXT, parse_reference

        for key, ref in value.items():
            try:
                parse_reference(ref)
            except ValueError:
                raise ValueError(
                    f"{key} must be a reference ({FORMS_TEXT}), never the secret itself"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> StrategyConfig:
        given = [k for k in ("builtin", "path", "command") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of builtin, path or command, not {' and '.join(given)}")
        if not given and self.name not in BUILTINS:
            raise ValueError(
                f"strategy {self.name!r} needs builtin, path or command "
                f"(built-in strategies: {', '.join(sorted(BUILTINS))})"
            )
        return self

    # --- what the host runs -----------------------------------------------------------

    @property
    def builtin_name(self) -> str | None:
        if self.builtin is not None:
            return self.builtin
        if self.path is None and self.command is None:
            return self.name
        return None

    def code_path(self) -> Path | None:
        """The SDK file or directory (a built-in's file in the package); None for command."""
        b = self.builtin_name
        if b is not None:
            return BUILTIN_DIR / BUILTINS[b]
        return self.path

    def resolved(self, base_dir: Path) -> StrategyConfig:
        """Relative paths (path, files, command arguments that are files) made absolute."""

        def fix(p: Path) -> Path:
            p = p.expanduser()
            return p if p.is_absolute() else (base_dir / p).resolve()

        update: dict[str, Any] = {"files": [fix(f) for f in self.files]}
        if self.path is not None:
            update["path"] = fix(self.path)
        if self.command is not None:
            argv = []
            for i, arg in enumerate(self.command):
                candidate = base_dir / arg
                # an argument that names an existing file next to the config is that file
                if not Path(arg).is_absolute() and (i > 0 or "/" in arg) and candidate.exists():
                    argv.append(str(candidate.resolve()))
                else:
                    argv.append(arg)
            update["command"] = argv
        return self.model_copy(update=update)


def endpoint(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an allowed endpoint; ValueError with a sentence if not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http(s) endpoint")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has a bad port") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if parts.username or parts.password:
        raise ValueError(f"{url!r} carries credentials: use secrets instead")
    host = parts.hostname.lower()
    if parts.scheme == "http" and host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{url!r} is plain http to a remote host: use https")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)
