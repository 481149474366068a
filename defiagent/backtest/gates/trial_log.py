"""Every configuration ever backtested, per strategy and per data: the N of the deflated
Sharpe ratio survives across runs.

Without it, ten sweeps of ten points each, or fifty single backtests with a param changed
by hand, would each be deflated as if they were the only tries, and the luckiest would
certify. `defiagent backtest` appends each configuration it ran (gates or not) to
`backtest.certificates_dir/trials.jsonl`, keyed by strategy name and the history's content
hash; the gates count every distinct configuration on record for that pair.

A line that is not a record is refused, never skipped (a forgotten try would loosen the
deflation); the file is the operator's to reset by hand when the data changes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from defiagent.agent.state import append_line, damaged_line, state_lines

FILE = "trials.jsonl"


class TrialRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str
    data_sha256: str
    params_sha256: str
    params: dict[str, Any]
    at: float


def params_digest(params: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class TrialLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _records(self) -> list[TrialRecord]:
        if not self.path.is_file():
            return []
        out = []
        for number, line in state_lines(self.path, "trial"):
            try:
                out.append(TrialRecord.model_validate_json(line))
            except ValidationError as exc:
                raise damaged_line(self.path, number, "trial", exc.errors()[0]["msg"]) from None
        return out

    def tried(self, strategy: str, data_sha256: str) -> set[str]:
        """The params digests on record for this strategy on this data."""
        return {
            r.params_sha256
            for r in self._records()
            if r.strategy == strategy and r.data_sha256 == data_sha256
        }

    def record(
        self, strategy: str, data_sha256: str, configurations: Iterable[Mapping[str, Any]]
    ) -> int:
        """Add the configurations not yet on record; return how many there are in all."""
        known = self.tried(strategy, data_sha256)
        for params in configurations:
            digest = params_digest(params)
            if digest in known:
                continue
            known.add(digest)
            record = TrialRecord(
                strategy=strategy,
                data_sha256=data_sha256,
                params_sha256=digest,
                params=dict(params),
                at=time.time(),
            )
            append_line(self.path, json.dumps(record.model_dump(mode="json"), default=str))
        return len(known)


def record_tried(
    certificates_dir: Path,
    strategy: str,
    data_sha256: str,
    configurations: Iterable[Mapping[str, Any]],
    tried_now: int = 0,
) -> int:
    """Log this run's configurations; the N for the deflated Sharpe ratio: every distinct
    configuration on record, and never fewer than this run tried (failed points included)."""
    on_record = TrialLog(Path(certificates_dir) / FILE).record(
        strategy, data_sha256, configurations
    )
    return max(on_record, tried_now)
