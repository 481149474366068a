"""The three verdicts of vetting: accepted, refused (findings), could not analyse.

"Could not analyse" is neither a pass nor a finding: the sources did not compile, or an
analyser crashed or ran out of time, so nothing was judged. It exits 1 like a refusal
(fail closed) but keeps its own kind, so a reviewer or a batch summary can tell "this
code is bad" from "this code was never looked at". Exit 3 stays for a missing tool.
"""

from __future__ import annotations

from typing import Literal

from defiagent.errors import DefiagentError

Verdict = Literal["accepted", "refused", "could-not-analyse"]

VERDICT_TEXT: dict[str, str] = {
    "accepted": "ACCEPTED",
    "refused": "REFUSED",
    "could-not-analyse": "COULD NOT ANALYSE",
}


class CouldNotAnalyse(DefiagentError):
    """An analyser ran but gave no result (crash, timeout, unreadable output)."""

    exit_code = 1
    kind = "could-not-analyse"
