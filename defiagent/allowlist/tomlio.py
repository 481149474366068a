"""TOML for allowlist entries: human-readable, diffable, and lossless for the model.

TOML has no null and its integers stop at 2^63: None values are left out (the model's
defaults bring them back) and larger integers are written as decimal strings (the model's
validators read them back). The signed content is the parsed model, not the file text,
so formatting and comments never void a signature; any change of a value does.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from defiagent.allowlist.models import AllowlistEntry
from defiagent.errors import ConfigError

_INT64 = (-(2**63), 2**63 - 1)

ENTRY_HEADER = (
    "# defiagent allowlist entry: reviewed like code.\n"
    "# Reviewers sign the canonical hash of everything here except [[approvals]]:\n"
    "# any edit voids every approval below. Re-sign with `defiagent allowlist approve`.\n\n"
)


def to_toml_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return to_toml_value(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(k): to_toml_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_toml_value(v) for v in value if v is not None]
    if isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, datetime | date | str | float):
        return value
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(model: BaseModel, header: str = "") -> str:
    return header + tomli_w.dumps(to_toml_value(model))


def write_model(path: Path, model: BaseModel, header: str = "") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(model, header))
    tmp.replace(path)  # atomic: a reader never sees half an entry


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "entry"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def read_entry(path: Path) -> AllowlistEntry:
    data = read_toml(path)
    try:
        return AllowlistEntry.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{path} is not a valid allowlist entry: {validation_message(exc)}"
        ) from exc


def write_entry(path: Path, entry: AllowlistEntry) -> None:
    write_model(path, entry, ENTRY_HEADER)
