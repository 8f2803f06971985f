"""Which attention kernel the transformer runs (diffusers' attention dispatcher), chosen from the device
and the packages installed: FlashAttention 3 on Hopper (flash_attn_interface), FlashAttention 2 elsewhere
on NVIDIA (flash_attn), else PyTorch's own scaled-dot-product attention ("native"), which picks its
fastest kernel itself and is the only one on CPU and Apple Silicon.

    choice = choose_attention("auto", device)   # (name, why)
    set_attention(transformer, choice.name)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import EaselError

CHOICES = ("auto", "native", "flash", "flash3", "sage", "xformers")
BACKENDS = {"native": "native", "flash": "flash", "flash3": "_flash_3", "sage": "sage", "xformers": "xformers"}
PACKAGES = {"flash": "flash_attn", "flash3": "flash_attn_interface", "sage": "sageattention", "xformers": "xformers"}
HOPPER = (9, 0)


@dataclass(frozen=True)
class AttentionChoice:
    name: str  # a key of BACKENDS
    why: str


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def choose_attention(requested: str, device, installed: Callable[[str], bool] = _installed) -> AttentionChoice:
    """The kernel for `requested` ("auto" or a name of CHOICES) on `device`; EaselError, saying what is
    missing, for a kernel the device or the installed packages cannot run."""
    if requested not in CHOICES:
        raise EaselError(f"--attention {requested!r}: choose one of {', '.join(CHOICES)}")
    cuda = device.kind == "cuda"
    if requested == "auto":
        if cuda and (device.compute_capability or (0, 0)) >= HOPPER and installed(PACKAGES["flash3"]):
            return AttentionChoice("flash3", "FlashAttention 3 on a Hopper GPU")
        if cuda and installed(PACKAGES["flash"]):
            return AttentionChoice("flash", "FlashAttention 2 on an NVIDIA GPU")
        return AttentionChoice("native", "PyTorch's scaled-dot-product attention (no faster kernel here)")
    if requested == "native":
        return AttentionChoice("native", "--attention native")
    if not cuda:
        raise EaselError(f"--attention {requested} runs on NVIDIA GPUs only; this device is {device.name}: "
                         "use --attention native or auto")
    if not installed(PACKAGES[requested]):
        raise EaselError(f"--attention {requested} needs the {PACKAGES[requested]} package, which is not installed: "
                         "install it, or use --attention auto")
    return AttentionChoice(requested, f"--attention {requested}")


def set_attention(transformer, name: str) -> None:
    """Point the transformer's attention at the kernel (native: diffusers' default, nothing to set)."""
    if name != "native" and hasattr(transformer, "set_attention_backend"):
        transformer.set_attention_backend(BACKENDS[name])
