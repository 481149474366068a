"""`[protocols.erc4626]`: the vaults the planner knows, each with its asset.

The asset is configured, not read at planning time (the planner does no I/O); a wrong one
cannot move funds: the simulation measures the real asset leaving and the outcome checks
refuse an asset the plan does not name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from defiagent.types import Address


class VaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address
    asset: Address
    name: str = Field(default="", max_length=64)  # for descriptions, e.g. "Demo Vault DUSD"

    @property
    def label(self) -> str:
        return self.name or self.address


class Erc4626Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vaults: list[VaultSpec] = Field(default=[], max_length=64)

    @model_validator(mode="after")
    def _distinct(self) -> Erc4626Settings:
        seen = [v.address for v in self.vaults]
        twice = sorted({a for a in seen if seen.count(a) > 1})
        if twice:
            raise ValueError(f"vault {twice[0]} is listed twice in [protocols.erc4626]")
        return self

    def vault(self, address: str) -> VaultSpec | None:
        return next((v for v in self.vaults if v.address.lower() == address.lower()), None)
