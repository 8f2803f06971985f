"""One model file as found on disk: what it is, or why it cannot be used."""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from app.catalog.identify import Identity, identify
from app.catalog.layout import PICKLE_SUFFIXES, UPSCALERS, SAFETENSORS_SUFFIXES
from app.catalog.pickle_check import weights_only_problem
from app.catalog.safetensors_header import DTYPE_BYTES, UnreadableFile, read_header

PICKLE_REASON = "pickle file: Easel loads only .safetensors; convert it"
GGUF_REASON = "GGUF file: only FLUX.1 and SD3.5 transformers and T5-XXL are read from GGUF files"
GGUF_KINDS = ("flux-transformer", "sd3-transformer", "t5xxl")


@dataclass(frozen=True)
class FoundFile:
    """A model-like file seen by a scan.

    kind:   one of identify.KINDS.
    path:   the file; for a diffusers-format ControlNet, its folder.
    role:   the category folder it sits in (layout.ROLES), None for a file loose in a models root.
    reason: why it cannot be used; None when it can.
    dtype:  the dtype holding most of its bytes ("F16", "F8_E4M3"...), None when not read.
    pickled: a .pth/.ckpt/.pt/.bin file. The catalog never unpickles; an upscaler .pth file is
            usable when its pickle is one the upscale loader's weights-only torch.load accepts
            (pickle_check.py reads its opcodes to tell), unusable with the reason otherwise.
    variant: for a ControlNet, its layout's flavour (app/controlnet/layouts.py: "instantx", "union"...).
    control_types: for a ControlNet, the control types it reads ("canny", "depth"...; () when unknown).
    """

    path: Path
    kind: str
    size_bytes: int
    role: str | None
    root: Path
    family: str | None = None
    variant: str | None = None
    key_layout: str | None = None
    contains: frozenset[str] = frozenset()
    reason: str | None = None
    dtype: str | None = None
    pickled: bool = False
    control_types: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.reason is None


def inspect_file(path: Path, role: str | None, root: Path) -> FoundFile:
    """Identify `path` from its header (safetensors) or its suffix (anything else). Never raises."""
    try:
        st = path.stat()
    except OSError as e:
        return FoundFile(path, "unknown", 0, role, root, reason=_stat_failure(path, e))
    size = st.st_size
    if not stat.S_ISREG(st.st_mode):  # a pipe or device would block the read
        return FoundFile(path, "unknown", 0, role, root, reason="not a regular file")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if role == UPSCALERS:  # the upscaler loader opens these itself, weights only
            return FoundFile(path, "upscaler", size, role, root, reason=weights_only_problem(path), pickled=True)
        return FoundFile(path, "unknown", size, role, root, reason=PICKLE_REASON, pickled=True)
    if suffix == ".gguf":
        return _inspect_gguf(path, size, role, root)
    if suffix not in SAFETENSORS_SUFFIXES:
        return FoundFile(path, "unknown", size, role, root,
                         reason=f"not a model format Easel reads ({suffix or 'no suffix'})")
    try:
        tensors, _ = read_header(path)
    except UnreadableFile as e:
        return FoundFile(path, "unknown", size, role, root, reason=e.reason)
    found: Identity = identify(tensors, path.stem)
    return FoundFile(
        path, found.kind, size, role, root, found.family, found.variant, found.key_layout,
        found.contains, found.problem, main_dtype(tensors), control_types=found.control_types,
    )


def _inspect_gguf(path: Path, size: int, role: str | None, root: Path) -> FoundFile:
    """A GGUF transformer (city96's quantizations), identified from its tensor table like a safetensors one;
    `dtype` is its main quant type ("Q8_0", "Q4_K"...)."""
    from app.catalog.gguf_header import main_quant_type, read_gguf_tensors, unloadable_types

    try:
        tensors = read_gguf_tensors(path)
    except UnreadableFile as e:
        return FoundFile(path, "unknown", size, role, root, reason=e.reason)
    found: Identity = identify(tensors, path.stem)
    reason = found.problem
    if found.kind not in GGUF_KINDS:
        reason = reason or GGUF_REASON
    elif unloadable_types(tensors):
        reason = f"GGUF quant types Easel cannot dequantize: {', '.join(unloadable_types(tensors))}"
    return FoundFile(path, found.kind if reason is None else "unknown", size, role, root, found.family,
                     found.variant, found.key_layout, found.contains, reason, main_quant_type(tensors))


def _stat_failure(path: Path, e: OSError) -> str:
    try:
        return f"broken link to {os.readlink(path)}"
    except OSError:
        return f"cannot read: {e.strerror or e}"


def main_dtype(tensors: dict[str, tuple[str, tuple[int, ...]]]) -> str | None:
    weight: Counter[str] = Counter()
    for dtype, shape in tensors.values():
        n = DTYPE_BYTES.get(dtype, 1)
        for d in shape:
            n *= d
        weight[dtype] += n
    return weight.most_common(1)[0][0] if weight else None
