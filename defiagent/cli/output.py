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
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

# Wide enough that no path, command or table row is ever folded when the output is piped.
PIPED_WIDTH = 10_000


class _Console(Console):
    """A rich console that wraps only on a terminal.

    Piped, redirected or captured, nothing is wrapped or folded: a path or a command stays
    whole on its line for grep, cut and copy-paste, whatever COLUMNS or the terminal the
    command was started from says. Decided at each print, not at import, so a console made
    before its stream was redirected follows the redirection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._soft_wrap = False
        super().__init__(*args, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(max(size.width, PIPED_WIDTH), size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    @property
    def soft_wrap(self) -> bool:  # print()'s default for soft_wrap
        return self._soft_wrap or not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value


console = _Console()
err_console = _Console(stderr=True)


def plain(text: object) -> str:
    """`text` made safe to embed in rich markup: "[signer]" stays "[signer]", not a style."""
    return escape(str(text))


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
