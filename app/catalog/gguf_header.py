"""Read a GGUF file's tensor table (names, shapes, quant types) without reading its weights.

GGUF (llama.cpp's format, which city96's FLUX.1 / SD3.5 quantizations use) stores each tensor's shape in
GGML order, innermost dimension first; here shapes are given as torch has them (outermost first), so the
catalog's rules (identify.py) read a GGUF transformer exactly as its safetensors sibling. The dtype of a
tensor is its GGML type name: "Q8_0", "Q4_K", "F16", "BF16"...
"""

from __future__ import annotations

import re
from pathlib import Path

from app.catalog.safetensors_header import TensorInfo, UnreadableFile

# GGML types whose tensors diffusers' GGUF loader dequantizes (diffusers.quantizers.gguf.utils)
LOADABLE_TYPES = frozenset({"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
                            "Q5_K", "Q6_K"})


# llama.cpp's T5 encoder names (city96's t5-v1_1-xxl-encoder GGUFs) -> transformers' T5EncoderModel names
_T5_NAMES = (
    (re.compile(r"^token_embd\.(weight)$"), "shared"),
    (re.compile(r"^enc\.output_norm\.(weight)$"), "encoder.final_layer_norm"),
    *((re.compile(rf"^enc\.blk\.(\d+)\.{ours}\.(weight)$"), f"encoder.block.{{}}.{theirs}") for ours, theirs in (
        ("attn_q", "layer.0.SelfAttention.q"), ("attn_k", "layer.0.SelfAttention.k"),
        ("attn_v", "layer.0.SelfAttention.v"), ("attn_o", "layer.0.SelfAttention.o"),
        ("attn_rel_b", "layer.0.SelfAttention.relative_attention_bias"), ("attn_norm", "layer.0.layer_norm"),
        ("ffn_gate", "layer.1.DenseReluDense.wi_0"), ("ffn_up", "layer.1.DenseReluDense.wi_1"),
        ("ffn_down", "layer.1.DenseReluDense.wo"), ("ffn_norm", "layer.1.layer_norm"))),
)


def transformers_name(name: str) -> str:
    """A tensor's name as Easel's loaders read it: llama.cpp's T5 names become transformers' (others stay)."""
    for pattern, target in _T5_NAMES:
        match = pattern.match(name)
        if match:
            groups = match.groups()
            return f"{target.format(*groups[:-1])}.{groups[-1]}"
    return name


def read_gguf_tensors(path: Path) -> dict[str, TensorInfo]:
    """{name: (GGML type name, torch-order shape)}, T5 names as transformers has them; UnreadableFile when
    the file is not a readable GGUF."""
    try:
        import gguf
    except ImportError:
        raise UnreadableFile("GGUF file: the gguf package is not installed (run scripts/setup.sh)", path) from None
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as e:  # bad magic, truncated tables, unknown types
        raise UnreadableFile(f"not a readable GGUF file ({e})", path) from None
    return {transformers_name(t.name): (t.tensor_type.name, tuple(int(d) for d in reversed(t.shape)))
            for t in reader.tensors}


def dequantized_tensors(path: Path) -> dict:
    """Every tensor of a GGUF file as float32 torch tensors (for a text encoder, which runs dequantized)."""
    import gguf
    import numpy as np
    import torch

    reader = gguf.GGUFReader(str(path))
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape))
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        out[transformers_name(t.name)] = torch.from_numpy(np.ascontiguousarray(values).reshape(shape))
    return out


def sixteen_bit_size(path: Path) -> int:
    """Bytes a GGUF file's tensors take dequantized to 16 bits."""
    total = 0
    for _, shape in read_gguf_tensors(path).values():
        size = 1
        for d in shape:
            size *= d
        total += 2 * size
    return total


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
