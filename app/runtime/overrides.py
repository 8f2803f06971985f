"""The user's memory flags (A1111/Forge names), checked for contradictions when they are built."""

from __future__ import annotations

from dataclasses import dataclass

OFFLOAD_CHOICES = ("auto", "none", "model", "group", "sequential")


@dataclass(frozen=True)
class MemoryOverrides:
    """The user's memory flags (A1111/Forge names). Contradictory flags raise ValueError on construction.

    `lowvram` asks for at least group offload on CUDA (block-level with streams: about the memory of
    sequential offload at a fraction of its cost) and sequential offload elsewhere. `medvram` asks for at
    least model offload. `offload` picks the placement outright ('none' keeps everything on the device).
    `vae_tiling` None lets the plan decide.
    """

    lowvram: bool = False
    medvram: bool = False
    force_fp16: bool = False
    no_half: bool = False
    offload: str = "auto"
    vae_tiling: bool | None = None

    def __post_init__(self) -> None:
        _check_overrides(self)

    @classmethod
    def from_flags(
        cls,
        *,
        lowvram: bool = False,
        medvram: bool = False,
        force_fp16: bool = False,
        no_half: bool = False,
        offload: str | None = "auto",
        vae_tiling: bool | None = None,
    ) -> MemoryOverrides:
        """Build from CLI/settings values; `offload` is case-insensitive and None means 'auto'."""
        return cls(
            lowvram=bool(lowvram),
            medvram=bool(medvram),
            force_fp16=bool(force_fp16),
            no_half=bool(no_half),
            offload=(offload or "auto").strip().lower(),
            vae_tiling=vae_tiling,
        )


def _check_overrides(o: MemoryOverrides) -> None:
    if o.offload not in OFFLOAD_CHOICES:
        raise ValueError(f"--offload must be one of {', '.join(OFFLOAD_CHOICES)}; got {o.offload!r}")
    if o.lowvram and o.medvram:
        raise ValueError("--lowvram and --medvram contradict each other: pass one of them")
    if o.force_fp16 and o.no_half:
        raise ValueError("--force-fp16 and --no-half contradict each other: pass one of them")
    if o.lowvram and o.offload in ("none", "model"):
        raise ValueError(f"--lowvram asks for group or sequential offload; --offload {o.offload} contradicts it")
    if o.medvram and o.offload == "none":
        raise ValueError("--medvram asks for model offload or more; --offload none contradicts it")
