"""Tiny model files for catalog tests: real tensor names, 1-element tensors, and real widths only
where identification reads them (CLIP/T5 widths, VAE latent channels, FLUX input projection)."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import save_file

Shapes = dict[str, tuple[int, ...]]


def flux_bfl_keys(dev: bool = False, prefix: str = "") -> Shapes:
    keys: Shapes = {
        "img_in.weight": (2, 4),
        "txt_in.weight": (1,),
        "time_in.in_layer.weight": (1,),
        "vector_in.in_layer.weight": (1,),
        "double_blocks.0.img_attn.qkv.weight": (1,),
        "double_blocks.0.txt_attn.qkv.weight": (1,),
        "single_blocks.0.linear1.weight": (1,),
        "final_layer.linear.weight": (64, 3072),
    }
    if dev:
        keys["guidance_in.in_layer.weight"] = (1,)
    return {prefix + k: v for k, v in keys.items()}


def flux_diffusers_keys(dev: bool = False) -> Shapes:
    keys: Shapes = {
        "x_embedder.weight": (2, 4),
        "context_embedder.weight": (1,),
        "time_text_embed.timestep_embedder.linear_1.weight": (1,),
        "transformer_blocks.0.attn.to_q.weight": (1,),
        "transformer_blocks.0.attn.add_q_proj.weight": (1,),
        "single_transformer_blocks.0.attn.to_q.weight": (1,),
        "proj_out.weight": (64, 3072),
    }
    if dev:
        keys["time_text_embed.guidance_embedder.linear_1.weight"] = (1,)
    return keys


def sd3_bfl_keys(medium: bool = False, prefix: str = "") -> Shapes:
    keys: Shapes = {
        "pos_embed": (1,),
        "x_embedder.proj.weight": (1,),
        "context_embedder.weight": (1,),
        "joint_blocks.0.x_block.attn.qkv.weight": (1,),
        "joint_blocks.0.context_block.attn.qkv.weight": (1,),
        "final_layer.linear.weight": (1,),
    }
    if medium:
        keys["joint_blocks.0.x_block.attn2.qkv.weight"] = (1,)
    return {prefix + k: v for k, v in keys.items()}


def sd3_diffusers_keys(medium: bool = False) -> Shapes:
    keys: Shapes = {
        "pos_embed.proj.weight": (1,),
        "context_embedder.weight": (1,),
        "transformer_blocks.0.attn.to_q.weight": (1,),
        "transformer_blocks.0.attn.add_q_proj.weight": (1,),
        "proj_out.weight": (1,),
    }
    if medium:
        keys["transformer_blocks.0.attn2.to_q.weight"] = (1,)
    return keys


def clip_keys(width: int, projection: bool, prefix: str = "text_model.") -> Shapes:
    keys: Shapes = {
        f"{prefix}embeddings.token_embedding.weight": (1, width),
        f"{prefix}embeddings.position_embedding.weight": (1,),
        f"{prefix}encoder.layers.0.self_attn.q_proj.weight": (1,),
        f"{prefix}final_layer_norm.weight": (1,),
    }
    if projection:
        keys["text_projection.weight"] = (1,)
    return keys


def t5_keys(width: int = 2, prefix: str = "") -> Shapes:
    return {
        f"{prefix}shared.weight": (1,),
        f"{prefix}encoder.block.0.layer.0.SelfAttention.q.weight": (1, width),
        f"{prefix}encoder.final_layer_norm.weight": (1,),
    }


def vae_keys(channels: int = 16, prefix: str = "") -> Shapes:
    return {
        f"{prefix}encoder.conv_in.weight": (1,),
        f"{prefix}decoder.conv_in.weight": (1, channels, 1, 1),
        f"{prefix}decoder.conv_out.weight": (1,),
    }


def lora_keys() -> Shapes:
    return {
        "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": (1,),
        "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight": (1,),
    }


def upscaler_keys() -> Shapes:
    return {"conv_first.weight": (1,), "body.0.rdb1.conv1.weight": (1,), "conv_last.weight": (1,)}


def sdxl_keys() -> Shapes:
    return {"model.diffusion_model.input_blocks.0.0.weight": (1,), "conditioner.embedders.0.x": (1,)}


def sd3_checkpoint_keys(medium: bool = False, t5: bool = True) -> Shapes:
    keys = sd3_bfl_keys(medium, prefix="model.diffusion_model.")
    keys |= clip_keys(768, False, "text_encoders.clip_l.transformer.text_model.")
    keys |= clip_keys(1280, False, "text_encoders.clip_g.transformer.text_model.")
    keys |= vae_keys(16, "first_stage_model.")
    if t5:
        keys |= t5_keys(2, "text_encoders.t5xxl.transformer.")
    return keys


def flux_checkpoint_keys(dev: bool = True) -> Shapes:
    keys = flux_bfl_keys(dev, prefix="model.diffusion_model.")
    keys |= clip_keys(768, False, "text_encoders.clip_l.transformer.text_model.")
    keys |= t5_keys(2, "text_encoders.t5xxl.transformer.")
    keys |= vae_keys(16, "vae.")
    return keys


def as_header(keys: Shapes, dtype: str = "F16") -> dict[str, tuple[str, tuple[int, ...]]]:
    """The {key: (dtype, shape)} read_header would return, for identification tests."""
    return {k: (dtype, v) for k, v in keys.items()}


def write_model(path: Path, keys: Shapes, dtype: torch.dtype = torch.float16,
                metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(shape, dtype=dtype) for k, shape in keys.items()}, str(path), metadata=metadata)
    return path


class Trap:
    """Unpickling this creates `marker`: proof that a file was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_torch_pickle(path: Path, keys: Shapes, *, legacy: bool = False) -> Path:
    """A .pth file as torch.save writes a state dict: the zip format, or the pre-1.6 stream when `legacy`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = OrderedDict((k, torch.zeros(shape)) for k, shape in keys.items())
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_text(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


FLUX_INDEX = {
    "_class_name": "FluxPipeline",
    "_diffusers_version": "0.42.1",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "FluxTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "image_encoder": [None, None],
    "feature_extractor": [None, None],
}

SD3_INDEX = {
    "_class_name": "StableDiffusion3Pipeline",
    "_diffusers_version": "0.42.1",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_3": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "tokenizer_3": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "SD3Transformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def write_diffusers_folder(folder: Path, family: str = "flux", *, dev: bool = False, medium: bool = False,
                           t5: bool = True) -> Path:
    """A complete diffusers folder of tiny files: configs, tokenizer files, safetensors weights."""
    index = dict(FLUX_INDEX if family == "flux" else SD3_INDEX)
    if family == "sd3" and not t5:
        index["text_encoder_3"] = index["tokenizer_3"] = [None, None]
    write_json(folder / "model_index.json", index)
    for component, spec in index.items():
        if component.startswith("_") or spec[1] is None:
            continue
        class_name = spec[1]
        d = folder / component
        if class_name == "CLIPTokenizer":
            write_text(d / "vocab.json", "{}")
            write_text(d / "merges.txt", "#version: 0.2\n")
        elif class_name.startswith("T5Tokenizer"):
            write_text(d / "spiece.model")
        elif class_name.endswith("Scheduler"):
            write_json(d / "scheduler_config.json", {"_class_name": class_name})
        elif class_name.startswith(("CLIP", "T5")):
            write_json(d / "config.json", {"architectures": [class_name]})
            write_model(d / "model.safetensors", {"w": (2,)})
        else:
            config: dict[str, object] = {"_class_name": class_name, "_diffusers_version": "0.42.1"}
            if class_name == "FluxTransformer2DModel":
                config["guidance_embeds"] = dev
            if class_name == "SD3Transformer2DModel":
                config["dual_attention_layers"] = [0, 1] if medium else []
            write_json(d / "config.json", config)
            keys = {"transformer": flux_diffusers_keys(dev) if family == "flux" else sd3_diffusers_keys(medium),
                    "vae": vae_keys()}[component]
            write_model(d / "diffusion_pytorch_model.safetensors", keys)
    return folder


def weights_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
