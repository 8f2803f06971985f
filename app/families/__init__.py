"""Model families: a table from family name to its adapter."""

from __future__ import annotations

from app.families.base import FamilyAdapter, VariantDefaults
from app.families.flux import FLUX
from app.families.sd3 import SD3

FAMILIES: dict[str, FamilyAdapter] = {FLUX.name: FLUX, SD3.name: SD3}


def family_for(name: str | None) -> FamilyAdapter:
    try:
        return FAMILIES[name or ""]
    except KeyError:
        raise ValueError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})") from None


__all__ = ["FAMILIES", "FamilyAdapter", "VariantDefaults", "family_for"]
