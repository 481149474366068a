"""`[retention]`: how long the audit log keeps its records (docs/privacy.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    audit_max_age_days: int | None = Field(
        default=None,
        ge=1,
        description="prune audit records older than this at each start (none: keep all); "
        "the rest stays verifiable from a signed checkpoint",
    )
