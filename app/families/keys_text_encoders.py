"""Text-encoder files (CLIP-L, CLIP-G, T5-XXL as ComfyUI and Stability ship them): tidy the keys
into the transformers layout and read the config from the shapes.

The files already use transformers' key names; what differs between them is a few extras
(position ids, logit scale, a T5 decoder), whether CLIP's text projection is there, and whether
T5's embedding is stored as "shared" or "encoder.embed_tokens".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

HEADS_METADATA_KEY = "easel.num_attention_heads"
# Head counts of the released CLIP text towers, by width (they cannot be read from the shapes).
RELEASED_CLIP_HEADS = {768: 12, 1280: 20}

# Saved by some exporters, not weights of the text tower.
_CLIP_EXTRAS = ("embeddings.position_ids", "logit_scale")


def _count_blocks(keys: Mapping[str, Any], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".", 1)[0]) for k in keys if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def tidy_clip(state_dict: Mapping[str, torch.Tensor], *, with_projection: bool) -> dict[str, torch.Tensor]:
    """The file's CLIP keys in one layout ("text_model.*" plus "text_projection.weight").

    Extras are dropped; a tower saved without the "text_model." prefix gets it. The projection
    is dropped for CLIPTextModel (with_projection False).

    Files without "text_projection.weight" get an identity projection when one is needed: the
    pooled output then passes through unprojected, as ComfyUI uses such files for SD3.
    """
    tensors = {
        k if k.startswith(("text_model.", "text_projection.")) else f"text_model.{k}": v
        for k, v in state_dict.items()
        if k not in _CLIP_EXTRAS and k.removeprefix("text_model.") not in _CLIP_EXTRAS
    }
    if not with_projection:
        tensors.pop("text_projection.weight", None)
    elif "text_projection.weight" not in tensors and "text_model.embeddings.token_embedding.weight" in tensors:
        embedding = tensors["text_model.embeddings.token_embedding.weight"]
        hidden = embedding.shape[1]
        tensors["text_projection.weight"] = torch.eye(hidden, dtype=embedding.dtype)
    return tensors


def fit_clip_prefix(expected: set[str], tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Files name CLIP's tower "text_model.*"; transformers 5's CLIPTextModel has it at the top
    level (CLIPTextModelWithProjection keeps the prefix). Match whichever the model expects."""
    if "text_model.embeddings.token_embedding.weight" in expected:
        return tensors
    return {k.removeprefix("text_model."): v for k, v in tensors.items()}


def infer_clip_config(
    state_dict: Mapping[str, torch.Tensor], released: Mapping[str, Any], metadata: Mapping[str, str]
) -> dict[str, Any]:
    """CLIPTextConfig fields: the released config with the shapes of the file.

    Heads: 12 for width 768 and 20 for 1280 (the released towers), else the file's
    "easel.num_attention_heads" metadata, else one head per 64 channels.
    """
    vocab_size, hidden = state_dict["text_model.embeddings.token_embedding.weight"].shape
    if hidden in RELEASED_CLIP_HEADS:
        heads = RELEASED_CLIP_HEADS[hidden]
    elif HEADS_METADATA_KEY in metadata:
        heads = int(metadata[HEADS_METADATA_KEY])
    else:
        heads = max(1, hidden // 64)
    if hidden % heads:
        raise ValueError(f"width {hidden} is not divisible into {heads} heads")
    projection = state_dict.get("text_projection.weight")
    config = dict(released)
    config.update(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_hidden_layers=_count_blocks(state_dict, "text_model.encoder.layers."),
        intermediate_size=state_dict["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        max_position_embeddings=state_dict["text_model.embeddings.position_embedding.weight"].shape[0],
        projection_dim=projection.shape[0] if projection is not None else hidden,
    )
    return config


def tidy_t5(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys for T5EncoderModel: the embedding under both of its tied names; a decoder (a full
    T5 checkpoint) is left out since only the encoder is used."""
    tensors = {
        k: v
        for k, v in state_dict.items()
        if not k.startswith(("decoder.", "lm_head.")) and k != "encoder.embed_tokens.weight"
    }
    embedding = state_dict.get("shared.weight", state_dict.get("encoder.embed_tokens.weight"))
    if embedding is None:
        raise ValueError("the token embedding (shared.weight or encoder.embed_tokens.weight) is missing")
    tensors["shared.weight"] = embedding
    tensors["encoder.embed_tokens.weight"] = embedding
    return tensors


def infer_t5_config(state_dict: Mapping[str, torch.Tensor], released: Mapping[str, Any]) -> dict[str, Any]:
    """T5Config fields: the released T5-XXL config with the shapes of the file."""
    vocab_size, d_model = state_dict["shared.weight"].shape
    bias = state_dict["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    buckets, heads = bias.shape
    inner = state_dict["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    if inner % heads:
        raise ValueError(f"attention width {inner} is not divisible into {heads} heads")
    layers = _count_blocks(state_dict, "encoder.block.")
    config = dict(released)
    config.update(
        vocab_size=vocab_size,
        d_model=d_model,
        num_heads=heads,
        d_kv=inner // heads,
        d_ff=state_dict["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0],
        num_layers=layers,
        num_decoder_layers=layers,
        relative_attention_num_buckets=buckets,
    )
    return config
