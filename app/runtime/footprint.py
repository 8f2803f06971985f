"""A model's weights by memory role, in bytes, from file headers (no weights read) or the released sizes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.runtime.weights import loaded_size

GB = 1_000_000_000  # model cards quote file sizes in decimal gigabytes

DTYPES = ("bfloat16", "float16", "float32")
BYTES_PER_ELEMENT = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class ModelFootprint:
    """Bytes of a model's weights at 16-bit precision, per role.

    `text_encoders` is the CLIP encoders together (CLIP-L for FLUX, CLIP-L and CLIP-G for SD3.5); `t5` is
    T5-XXL, kept apart because the plan may leave it on the CPU.
    """

    transformer: int
    text_encoders: int
    t5: int
    vae: int

    ROLES = ("transformer", "text_encoders", "t5", "vae")

    @property
    def total(self) -> int:
        return self.transformer + self.text_encoders + self.t5 + self.vae

    @property
    def largest_component(self) -> int:
        """What model offload must hold at once: it swaps whole components in one at a time."""
        return max(self.transformer, self.text_encoders, self.t5, self.vae)

    @property
    def without_t5(self) -> int:
        return self.total - self.t5

    def at_dtype(self, dtype: str) -> ModelFootprint:
        """The same weights in `dtype` (float32 doubles them)."""
        factor = BYTES_PER_ELEMENT[dtype] / 2
        return ModelFootprint(
            transformer=int(self.transformer * factor),
            text_encoders=int(self.text_encoders * factor),
            t5=int(self.t5 * factor),
            vae=int(self.vae * factor),
        )

    @classmethod
    def for_variant(cls, variant: str) -> ModelFootprint:
        """The released models' sizes in bf16, for planning before any file is found."""
        try:
            return _RELEASED_FOOTPRINTS[variant]
        except KeyError:
            known = ", ".join(_RELEASED_FOOTPRINTS)
            raise ValueError(f"unknown model variant {variant!r}; known variants: {known}") from None

    @classmethod
    def from_files(cls, parts: Mapping[str, Iterable[str | Path]], fp8_kept: Iterable[str] = ()) -> ModelFootprint:
        """Sum the files of each role, normalised to 16 bits from their safetensors headers.

        `parts` maps a role ('transformer', 'text_encoders', 't5', 'vae') to its files (shards, or one
        file per CLIP encoder). A missing role or file counts 0; no weights are read. `fp8_kept`: roles
        whose fp8 tensors the loader keeps in fp8 (a single-file transformer), counted as stored.
        """
        kept = set(fp8_kept)
        unknown = set(parts) - set(cls.ROLES)
        if unknown:
            raise ValueError(f"unknown footprint roles {sorted(unknown)}; roles are {', '.join(cls.ROLES)}")
        sizes = {role: sum(loaded_size(Path(p), role in kept, keeps_gguf=role == "transformer")
                           for p in parts.get(role, ())) for role in cls.ROLES}
        return cls(**sizes)


_FLUX_TRANSFORMER = int(23.8 * GB)
_SD35_LARGE_TRANSFORMER = int(16.3 * GB)
_SD35_MEDIUM_TRANSFORMER = int(4.9 * GB)
_CLIP_L = int(0.25 * GB)
_CLIP_G = int(1.4 * GB)
_T5_XXL = int(9.5 * GB)
_VAE_16_CHANNELS = int(0.17 * GB)  # FLUX and SD3.5 share the 16-channel VAE layout

_RELEASED_FOOTPRINTS = {
    "flux-schnell": ModelFootprint(_FLUX_TRANSFORMER, _CLIP_L, _T5_XXL, _VAE_16_CHANNELS),
    "flux-dev": ModelFootprint(_FLUX_TRANSFORMER, _CLIP_L, _T5_XXL, _VAE_16_CHANNELS),
    "sd3.5-large": ModelFootprint(_SD35_LARGE_TRANSFORMER, _CLIP_L + _CLIP_G, _T5_XXL, _VAE_16_CHANNELS),
    "sd3.5-large-turbo": ModelFootprint(_SD35_LARGE_TRANSFORMER, _CLIP_L + _CLIP_G, _T5_XXL, _VAE_16_CHANNELS),
    "sd3.5-medium": ModelFootprint(_SD35_MEDIUM_TRANSFORMER, _CLIP_L + _CLIP_G, _T5_XXL, _VAE_16_CHANNELS),
}
