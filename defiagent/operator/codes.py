"""Where the operator's code comes from. Never argv: arguments show in `ps` and shell history.

On a terminal: a hidden prompt. Otherwise one line of stdin when --otp-stdin is given, else
the environment variable DEFIAGENT_OTP_CODE. None when there is no code.
"""

from __future__ import annotations

import getpass
import os
import sys

from defiagent.errors import ConfigError

ENV_VAR = "DEFIAGENT_OTP_CODE"


def read_code(*, otp_stdin: bool = False, label: str = "Operator code (TOTP)") -> str | None:
    stdin = sys.stdin
    if stdin is not None and _isatty(stdin):
        try:
            value = getpass.getpass(f"{label}: ")
        except EOFError:
            value = ""
    elif otp_stdin:
        try:
            value = stdin.readline() if stdin is not None else ""
        except (OSError, ValueError) as exc:
            raise ConfigError("--otp-stdin was given but stdin cannot be read") from exc
    else:
        value = os.environ.get(ENV_VAR, "")
    value = "".join(value.split())
    return value or None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False
