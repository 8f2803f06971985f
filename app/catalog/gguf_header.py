"""Read a GGUF file's tensor table (names, shapes, quant types) without reading its weights.

GGUF (llama.cpp's format, which city96's FLUX.1 / SD3.5 quantizations use) stores each tensor's shape in
GGML order, innermost dimension first; here shapes are given as torch has them (outermost first), so the
catalog's rules (identify.py) read a GGUF transformer exactly as its safetensors sibling. The dtype of a
tensor is its GGML type name: "Q8_0", "Q4_K", "F16", "BF16"...
"""

from __future__ import annotations

from pathlib import Path

from app.catalog.safetensors_header import TensorInfo, UnreadableFile

# GGML types whose tensors diffusers' GGUF loader dequantizes (diffusers.quantizers.gguf.utils)
LOADABLE_TYPES = frozenset({"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
                            "Q5_K", "Q6_K"})


def read_gguf_tensors(path: Path) -> dict[str, TensorInfo]:
    """{name: (GGML type name, torch-order shape)}; UnreadableFile when the file is not a readable GGUF."""
    try:
        import gguf
    except ImportError:
        raise UnreadableFile("GGUF file: the gguf package is not installed (run scripts/setup.sh)", path) from None
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as e:  # bad magic, truncated tables, unknown types
        raise UnreadableFile(f"not a readable GGUF file ({e})", path) from None
    return {t.name: (t.tensor_type.name, tuple(int(d) for d in reversed(t.shape))) for t in reader.tensors}


def unloadable_types(tensors: dict[str, TensorInfo]) -> list[str]:
    """The GGML types in a file that the loader cannot dequantize (IQ quants, ternary types...)."""
    return sorted({dtype for dtype, _ in tensors.values()} - LOADABLE_TYPES)


def main_quant_type(tensors: dict[str, TensorInfo]) -> str | None:
    """The type of most of the file's weight matrices (city96's files keep norms and biases in F32)."""
    counts: dict[str, int] = {}
    for dtype, shape in tensors.values():
        if len(shape) >= 2:
            size = 1
            for d in shape:
                size *= d
            counts[dtype] = counts.get(dtype, 0) + size
    return max(counts, key=counts.get) if counts else None
