"""Output conventions shared by every command.

--json: one JSON document on stdout, nothing else there; human output goes through rich.
Errors: one sentence on stderr; with --json also {"ok": false, "error": {...}} on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [to_jsonable(x) for x in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def emit(data: Any, *, as_json: bool, human: Callable[[], None]) -> None:
    """Print `data` as JSON when asked, else call the human renderer."""
    if as_json:
        print_json(data)
    else:
        human()
