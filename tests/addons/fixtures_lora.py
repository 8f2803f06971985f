"""Rank-1 LoRA files in each format, with the real key names and the shapes of the released models.

The models are built on the meta device from Easel's shipped configs (no weights, no memory); the
LoRA tensors are small real ones (down (1, in), up (out, 1)), seeded, so their deltas can be
compared. Key names are written as each trainer saves them, independently of app/addons.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

CONFIGS = Path(__file__).resolve().parents[2] / "app" / "families" / "configs"


def _config(variant: str, part: str) -> dict:
    return json.loads((CONFIGS / variant / f"{part}.json").read_text())


def meta_transformer(variant: str) -> torch.nn.Module:
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    cls = FluxTransformer2DModel if variant.startswith("flux") else SD3Transformer2DModel
    with torch.device("meta"):
        return cls.from_config(_config(variant, "transformer"))


def meta_text_encoder(variant: str, part: str) -> torch.nn.Module:
    import transformers

    config = _config(variant, part)
    cls = getattr(transformers, config["architectures"][0])
    with torch.device("meta"):
        return cls(cls.config_class(**config))


def shape(model: torch.nn.Module, module: str) -> tuple[int, int]:
    """(out, in) of a module's weight; CLIP names as trainers write them ("text_model.encoder...")
    also find transformers 5's CLIPTextModel, which has no "text_model." level."""
    modules = dict(model.named_modules())
    if module not in modules and module.startswith("text_model."):
        module = module.removeprefix("text_model.")
    weight = modules[module].weight
    return weight.shape[0], weight[0].numel()


class Maker:
    """Seeded rank-1 tensors: `pair(out, in)` gives (down (1, in), up (out, 1))."""

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float32):
        self.gen = torch.Generator().manual_seed(seed)
        self.dtype = dtype

    def tensor(self, *size: int) -> torch.Tensor:
        return torch.randn(*size, generator=self.gen).to(self.dtype)

    def pair(self, out: int, inp: int, rank: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensor(rank, inp), self.tensor(out, rank)


def add_lora(sd: dict, name: str, out: int, inp: int, make: Maker, *, down="lora_down.weight",
             up="lora_up.weight", alpha: float | None = None, rank: int = 1) -> None:
    d, u = make.pair(out, inp, rank)
    sd[f"{name}.{down}"], sd[f"{name}.{up}"] = d, u
    if alpha is not None:
        sd[f"{name}.alpha"] = torch.tensor(alpha)


# --- FLUX, BFL names (kohya, ComfyUI, BFL control LoRAs) -------------------------------------------
# BFL module -> the diffusers modules whose rows it stacks (for its shape only).
FLUX_TOP = {
    "img_in": ("x_embedder",), "txt_in": ("context_embedder",),
    "time_in.in_layer": ("time_text_embed.timestep_embedder.linear_1",),
    "time_in.out_layer": ("time_text_embed.timestep_embedder.linear_2",),
    "vector_in.in_layer": ("time_text_embed.text_embedder.linear_1",),
    "vector_in.out_layer": ("time_text_embed.text_embedder.linear_2",),
    "guidance_in.in_layer": ("time_text_embed.guidance_embedder.linear_1",),
    "guidance_in.out_layer": ("time_text_embed.guidance_embedder.linear_2",),
    "final_layer.linear": ("proj_out",), "final_layer.adaLN_modulation.1": ("norm_out.linear",),
}
FLUX_DOUBLE = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"), "img_attn.proj": ("attn.to_out.0",),
    "img_mlp.0": ("ff.net.0.proj",), "img_mlp.2": ("ff.net.2",), "img_mod.lin": ("norm1.linear",),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"), "txt_attn.proj": ("attn.to_add_out",),
    "txt_mlp.0": ("ff_context.net.0.proj",), "txt_mlp.2": ("ff_context.net.2",), "txt_mod.lin": ("norm1_context.linear",),
}
FLUX_SINGLE = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), "linear2": ("proj_out",),
    "modulation.lin": ("norm.linear",),
}


def flux_bfl_modules(transformer, guidance: bool = True) -> dict[str, tuple[int, int]]:
    """BFL module name -> (out, in) of its (fused) weight in this model."""
    def fused(prefix: str, parts: Iterable[str]) -> tuple[int, int]:
        shapes = [shape(transformer, prefix + p) for p in parts]
        return sum(s[0] for s in shapes), shapes[0][1]

    found = {n: fused("", p) for n, p in FLUX_TOP.items() if guidance or not n.startswith("guidance")}
    for i in range(len(transformer.transformer_blocks)):
        found.update({f"double_blocks.{i}.{n}": fused(f"transformer_blocks.{i}.", p) for n, p in FLUX_DOUBLE.items()})
    for i in range(len(transformer.single_transformer_blocks)):
        found.update({f"single_blocks.{i}.{n}": fused(f"single_transformer_blocks.{i}.", p) for n, p in FLUX_SINGLE.items()})
    return found


def kohya_flux(transformer, *, alpha: float = 0.5, guidance: bool = True, seed: int = 0) -> dict:
    """sd-scripts' FLUX LoRA: lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight, ...alpha."""
    make, sd = Maker(seed), {}
    for name, (out, inp) in flux_bfl_modules(transformer, guidance).items():
        add_lora(sd, "lora_unet_" + name.replace(".", "_"), out, inp, make, alpha=alpha)
    return sd


def kohya_clip_l(text_encoder, prefix: str = "lora_te1_", *, alpha: float = 1.0, seed: int = 1) -> dict:
    """sd-scripts' text-encoder keys: lora_te1_text_model_encoder_layers_0_self_attn_q_proj..."""
    make, sd = Maker(seed), {}
    for i in range(text_encoder.config.num_hidden_layers):
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"):
            module = f"text_model.encoder.layers.{i}.{part}"
            add_lora(sd, prefix + module.replace(".", "_"), *shape(text_encoder, module), make, alpha=alpha)
    return sd


def kohya_t5(text_encoder, prefix: str = "lora_te3_", *, seed: int = 2) -> dict:
    make, sd = Maker(seed), {}
    for i in range(text_encoder.config.num_layers):
        for part in ("layer.0.SelfAttention.q", "layer.0.SelfAttention.k", "layer.0.SelfAttention.v",
                     "layer.0.SelfAttention.o", "layer.1.DenseReluDense.wi_0", "layer.1.DenseReluDense.wi_1",
                     "layer.1.DenseReluDense.wo"):
            module = f"encoder.block.{i}.{part}"
            add_lora(sd, prefix + module.replace(".", "_"), *shape(text_encoder, module), make, alpha=1.0)
    return sd


def peft_modules(model, prefix: str, *, seed: int = 3, only: Iterable[str] | None = None,
                 kinds=(torch.nn.Linear,)) -> dict:
    """diffusers / PEFT / ai-toolkit keys: <prefix><module>.lora_A.weight / .lora_B.weight."""
    make, sd = Maker(seed), {}
    wanted = set(only) if only is not None else None
    for name, module in model.named_modules():
        if isinstance(module, kinds) and (wanted is None or name in wanted):
            add_lora(sd, prefix + name, *shape(model, name), make, down="lora_A.weight", up="lora_B.weight")
    return sd


def xlabs_flux(transformer, *, seed: int = 4, single: bool = True) -> dict:
    """XLabs' processors: double_blocks.N.processor.{qkv,proj}_lora{1,2}.{down,up}.weight, single qkv/proj."""
    make, sd = Maker(seed), {}
    for i in range(len(transformer.transformer_blocks)):
        b = f"transformer_blocks.{i}."
        inner = shape(transformer, b + "attn.to_q")[0]
        for proc, (out, inp) in {"qkv_lora1": (3 * inner, inner), "qkv_lora2": (3 * inner, inner),
                                 "proj_lora1": (inner, inner), "proj_lora2": (inner, inner)}.items():
            add_lora(sd, f"double_blocks.{i}.processor.{proc}", out, inp, make, down="down.weight", up="up.weight")
    if single:
        for i in range(len(transformer.single_transformer_blocks)):
            inner = shape(transformer, f"single_transformer_blocks.{i}.attn.to_q")[0]
            add_lora(sd, f"single_blocks.{i}.processor.qkv_lora", 3 * inner, inner, make, down="down.weight", up="up.weight")
            add_lora(sd, f"single_blocks.{i}.processor.proj_lora", inner, inner, make, down="down.weight", up="up.weight")
    return sd


def bfl_control_flux(transformer, *, in_channels: int = 128, rank: int = 2, seed: int = 5) -> dict:
    """FLUX.1-Canny/Depth-dev-lora: BFL names with lora_A / lora_B (+ lora_B.bias), full norm scales,
    and an img_in LoRA whose input is wider (image + control latents) than FluxPipeline's model.
    Rank 2 (the released files have 128): diffusers' converter cannot split a rank-1 lora_A."""
    make, sd = Maker(seed), {}
    for name, (out, inp) in flux_bfl_modules(transformer).items():
        if name == "img_in":
            inp = in_channels
        add_lora(sd, name, out, inp, make, down="lora_A.weight", up="lora_B.weight", rank=rank)
        sd[f"{name}.lora_B.bias"] = make.tensor(out)
    for i, block in enumerate(transformer.transformer_blocks):
        head = block.attn.norm_q.weight.shape[0]
        for side in ("img_attn", "txt_attn"):
            for norm in ("query_norm", "key_norm"):
                sd[f"double_blocks.{i}.{side}.norm.{norm}.scale"] = make.tensor(head)
    for i, block in enumerate(transformer.single_transformer_blocks):
        head = block.attn.norm_q.weight.shape[0]
        for norm in ("query_norm", "key_norm"):
            sd[f"single_blocks.{i}.norm.{norm}.scale"] = make.tensor(head)
    return sd


# --- SD3 / SD3.5, Stability names (kohya) ----------------------------------------------------------
SD3_X = {"attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"), "attn.proj": ("attn.to_out.0",),
         "mlp.fc1": ("ff.net.0.proj",), "mlp.fc2": ("ff.net.2",), "adaLN_modulation.1": ("norm1.linear",)}
SD3_X_ATTN2 = {"attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"), "attn2.proj": ("attn2.to_out.0",)}
SD3_CONTEXT = {"attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
               "attn.proj": ("attn.to_add_out",), "mlp.fc1": ("ff_context.net.0.proj",),
               "mlp.fc2": ("ff_context.net.2",), "adaLN_modulation.1": ("norm1_context.linear",)}
SD3_CONTEXT_LAST = ("attn.qkv", "adaLN_modulation.1")  # the last block's context side is pre-only
SD3_TOP = {"context_embedder": ("context_embedder",),
           "t_embedder.mlp.0": ("time_text_embed.timestep_embedder.linear_1",),
           "t_embedder.mlp.2": ("time_text_embed.timestep_embedder.linear_2",),
           "y_embedder.mlp.0": ("time_text_embed.text_embedder.linear_1",),
           "y_embedder.mlp.2": ("time_text_embed.text_embedder.linear_2",),
           "final_layer.linear": ("proj_out",), "final_layer.adaLN_modulation.1": ("norm_out.linear",)}


def sd3_original_modules(transformer) -> dict[str, tuple[int, int]]:
    def fused(prefix: str, parts) -> tuple[int, int]:
        shapes = [shape(transformer, prefix + p) for p in parts]
        return sum(s[0] for s in shapes), shapes[0][1]

    found = {n: fused("", p) for n, p in SD3_TOP.items()}
    last = len(transformer.transformer_blocks) - 1
    for i, block in enumerate(transformer.transformer_blocks):
        src, dst = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        tables = [("x_block.", SD3_X)] + ([("x_block.", SD3_X_ATTN2)] if block.attn2 is not None else [])
        context = SD3_CONTEXT if i < last else {k: SD3_CONTEXT[k] for k in SD3_CONTEXT_LAST}
        for side, table in tables + [("context_block.", context)]:
            found.update({src + side + n: fused(dst, p) for n, p in table.items()})
    return found


def kohya_sd3(transformer, *, alpha: float = 0.5, seed: int = 6) -> dict:
    """sd-scripts' SD3.5 LoRA: lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight, ..."""
    make, sd = Maker(seed), {}
    for name, (out, inp) in sd3_original_modules(transformer).items():
        add_lora(sd, "lora_unet_" + name.replace(".", "_"), out, inp, make, alpha=alpha)
    return sd


# --- SDXL (to be refused by FLUX and SD3.5) -------------------------------------------------------
def kohya_sdxl(seed: int = 7) -> dict:
    make, sd = Maker(seed), {}
    for block in ("input_blocks_4_1", "input_blocks_7_1", "middle_block_1", "output_blocks_0_1"):
        for attn in ("attn1_to_q", "attn1_to_k", "attn2_to_q", "ff_net_2"):
            add_lora(sd, f"lora_unet_{block}_transformer_blocks_0_{attn}", 640, 640, make, alpha=4.0)
    add_lora(sd, "lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768, 768, make, alpha=1.0)
    add_lora(sd, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280, make, alpha=1.0)
    return sd


# --- LyCORIS (kohya names) -------------------------------------------------------------------------
def loha(name: str, out: int, inp: int, make: Maker, rank: int = 2, alpha: float = 1.0) -> dict:
    return {f"{name}.hada_w1_a": make.tensor(out, rank), f"{name}.hada_w1_b": make.tensor(rank, inp),
            f"{name}.hada_w2_a": make.tensor(out, rank), f"{name}.hada_w2_b": make.tensor(rank, inp),
            f"{name}.alpha": torch.tensor(alpha)}


def lokr(name: str, out: int, inp: int, make: Maker, factor: int = 4, rank: int = 2, alpha: float = 1.0) -> dict:
    """LoKr with a full w1 (factor x factor) and a low-rank w2 (w2_a @ w2_b)."""
    return {f"{name}.lokr_w1": make.tensor(factor, factor), f"{name}.lokr_w2_a": make.tensor(out // factor, rank),
            f"{name}.lokr_w2_b": make.tensor(rank, inp // factor), f"{name}.alpha": torch.tensor(alpha)}


def save(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=dict(metadata or {}) or None)
    return path
