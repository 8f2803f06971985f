"""Tiny random FLUX / SD3 models, exported to the single-file layouts people download.

Each builder makes a small diffusers or transformers model (its weights nudged off their default
init, so swapped or dropped tensors change the outputs), and each exporter writes it the way the
original releases and ComfyUI do: BFL FLUX keys, Stability SD3 keys, LDM VAE keys, ComfyUI text
encoders, an SD3 all-in-one checkpoint. The key mappings here are written from the original
layouts, independently of the loader under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel
from safetensors.torch import save_file
from transformers import (
    CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5Tokenizer,
)

from app.catalog.entry import READY, ModelEntry

CLIP_VOCAB = 49408  # the real CLIP tokenizer ships with Easel, so the tiny towers keep its vocabulary
T5_WORDS = ("a", "photo", "of", "cat", "dog", "red", "blue", "tiny", "big", "house")
T5_VOCAB = 3 + 2 * len(T5_WORDS) + 27  # specials, "▁word" and "word", "▁" and letters


def _nudge(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every weight off its init (norm weights are all ones, some projections zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model.eval()


# ----------------------------------------------------------------------------------- builders
def tiny_flux(*, guidance: bool = True, head_dim: int = 32, heads: int = 2,
              axes: tuple[int, int, int] = (4, 14, 14), seed: int = 0) -> FluxTransformer2DModel:
    torch.manual_seed(seed)
    model = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=head_dim,
        num_attention_heads=heads, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=guidance, axes_dims_rope=axes,
    )
    return _nudge(model, seed)


def tiny_sd3(*, dual_attention: bool = True, qk_norm: bool = True, seed: int = 0) -> SD3Transformer2DModel:
    """SD3.5-like (dual attention in layer 0, RMS qk-norm, head 8) or SD3.0-like (head 64, neither)."""
    torch.manual_seed(seed)
    head_dim, heads = (8, 4) if qk_norm else (64, 1)
    model = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=head_dim,
        num_attention_heads=heads, joint_attention_dim=64, caption_projection_dim=head_dim * heads,
        pooled_projection_dim=64, out_channels=16, pos_embed_max_size=16,
        dual_attention_layers=(0,) if dual_attention else (), qk_norm="rms_norm" if qk_norm else None,
    )
    return _nudge(model, seed)


def tiny_vae(*, latent_channels: int = 16, seed: int = 0) -> AutoencoderKL:
    """The real VAE's shape at toy width: 4 blocks (scale factor 8), no quant convs."""
    torch.manual_seed(seed)
    model = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=32, sample_size=64,
        use_quant_conv=False, use_post_quant_conv=False,
    )
    return _nudge(model, seed)


def tiny_clip(*, hidden: int = 32, heads: int = 4, act: str = "quick_gelu", projection: bool = True,
              seed: int = 0) -> CLIPTextModel | CLIPTextModelWithProjection:
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB, hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=heads, max_position_embeddings=77, projection_dim=hidden, hidden_act=act,
        bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return _nudge(model, seed)


def tiny_t5(*, d_model: int = 32, seed: int = 0) -> T5EncoderModel:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=T5_VOCAB, d_model=d_model, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", dropout_rate=0.0,
    )
    return _nudge(T5EncoderModel(config), seed)


def write_t5_tokenizer(folder: Path) -> Path:
    """A word-level T5 (unigram) tokenizer covering T5_WORDS, saved as a user would copy one."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(f"\u2581{w}", -1.0) for w in T5_WORDS] + [(w, -2.0) for w in T5_WORDS]
    pieces += [("\u2581", -3.0)] + [(c, -4.0) for c in letters]
    assert len(pieces) == T5_VOCAB
    T5Tokenizer(vocab=pieces, extra_ids=0).save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------------- original key layouts
class _Exporter:
    """Copies diffusers tensors to original names and checks that every tensor was exported."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor]):
        self.source = dict(state_dict)
        self.used: set[str] = set()
        self.out: dict[str, torch.Tensor] = {}

    def take(self, key: str) -> torch.Tensor:
        self.used.add(key)
        return self.source[key]

    def has(self, key: str) -> bool:
        return key in self.source

    def rename(self, original: str, diffusers: str, params: Iterable[str] = ("weight", "bias")) -> None:
        for param in params:
            if self.has(f"{diffusers}.{param}"):
                self.out[f"{original}.{param}"] = self.take(f"{diffusers}.{param}")

    def fuse(self, original: str, parts: Iterable[str], params: Iterable[str] = ("weight", "bias")) -> None:
        parts = list(parts)
        for param in params:
            self.out[f"{original}.{param}"] = torch.cat([self.take(f"{p}.{param}") for p in parts], dim=0)

    def done(self, prefix: str = "") -> dict[str, torch.Tensor]:
        left = sorted(set(self.source) - self.used)
        assert not left, f"fixture exporter left tensors behind: {left[:5]}"
        return {prefix + k: v.contiguous() for k, v in self.out.items()}


def _shift_scale(tensor: torch.Tensor) -> torch.Tensor:
    """diffusers' final AdaLayerNorm is (scale, shift); the originals store (shift, scale)."""
    scale, shift = tensor.chunk(2, dim=0)
    return torch.cat([shift, scale], dim=0)


def flux_to_bfl(model: FluxTransformer2DModel, prefix: str = "") -> dict[str, torch.Tensor]:
    """A FLUX transformer in Black Forest Labs' key layout (flux1-dev.safetensors)."""
    ex = _Exporter(model.state_dict())
    ex.rename("img_in", "x_embedder")
    ex.rename("txt_in", "context_embedder")
    ex.rename("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1")
    ex.rename("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2")
    ex.rename("vector_in.in_layer", "time_text_embed.text_embedder.linear_1")
    ex.rename("vector_in.out_layer", "time_text_embed.text_embedder.linear_2")
    ex.rename("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1")
    ex.rename("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2")
    for i in range(model.config.num_layers):
        d, b = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        ex.rename(b + "img_mod.lin", d + "norm1.linear")
        ex.rename(b + "txt_mod.lin", d + "norm1_context.linear")
        ex.fuse(b + "img_attn.qkv", [d + "attn.to_q", d + "attn.to_k", d + "attn.to_v"])
        ex.fuse(b + "txt_attn.qkv", [d + "attn.add_q_proj", d + "attn.add_k_proj", d + "attn.add_v_proj"])
        ex.out[b + "img_attn.norm.query_norm.scale"] = ex.take(d + "attn.norm_q.weight")
        ex.out[b + "img_attn.norm.key_norm.scale"] = ex.take(d + "attn.norm_k.weight")
        ex.out[b + "txt_attn.norm.query_norm.scale"] = ex.take(d + "attn.norm_added_q.weight")
        ex.out[b + "txt_attn.norm.key_norm.scale"] = ex.take(d + "attn.norm_added_k.weight")
        ex.rename(b + "img_attn.proj", d + "attn.to_out.0")
        ex.rename(b + "txt_attn.proj", d + "attn.to_add_out")
        ex.rename(b + "img_mlp.0", d + "ff.net.0.proj")
        ex.rename(b + "img_mlp.2", d + "ff.net.2")
        ex.rename(b + "txt_mlp.0", d + "ff_context.net.0.proj")
        ex.rename(b + "txt_mlp.2", d + "ff_context.net.2")
    for i in range(model.config.num_single_layers):
        s, b = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        ex.rename(b + "modulation.lin", s + "norm.linear")
        ex.fuse(b + "linear1", [s + "attn.to_q", s + "attn.to_k", s + "attn.to_v", s + "proj_mlp"])
        ex.out[b + "norm.query_norm.scale"] = ex.take(s + "attn.norm_q.weight")
        ex.out[b + "norm.key_norm.scale"] = ex.take(s + "attn.norm_k.weight")
        ex.rename(b + "linear2", s + "proj_out")
    ex.rename("final_layer.linear", "proj_out")
    for param in ("weight", "bias"):
        ex.out[f"final_layer.adaLN_modulation.1.{param}"] = _shift_scale(ex.take(f"norm_out.linear.{param}"))
    return ex.done(prefix)


def sd3_to_original(model: SD3Transformer2DModel, prefix: str = "") -> dict[str, torch.Tensor]:
    """An SD3 transformer in Stability's key layout (sd3.5_large.safetensors)."""
    ex = _Exporter(model.state_dict())
    ex.out["pos_embed"] = ex.take("pos_embed.pos_embed")
    ex.rename("x_embedder.proj", "pos_embed.proj")
    ex.rename("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1")
    ex.rename("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2")
    ex.rename("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1")
    ex.rename("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")
    ex.rename("context_embedder", "context_embedder")
    last = model.config.num_layers - 1
    for i in range(model.config.num_layers):
        d, x, c = f"transformer_blocks.{i}.", f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block."
        ex.fuse(x + "attn.qkv", [d + "attn.to_q", d + "attn.to_k", d + "attn.to_v"])
        ex.fuse(c + "attn.qkv", [d + "attn.add_q_proj", d + "attn.add_k_proj", d + "attn.add_v_proj"])
        ex.rename(x + "attn.ln_q", d + "attn.norm_q", ["weight"])
        ex.rename(x + "attn.ln_k", d + "attn.norm_k", ["weight"])
        ex.rename(c + "attn.ln_q", d + "attn.norm_added_q", ["weight"])
        ex.rename(c + "attn.ln_k", d + "attn.norm_added_k", ["weight"])
        ex.rename(x + "attn.proj", d + "attn.to_out.0")
        ex.rename(c + "attn.proj", d + "attn.to_add_out")
        if ex.has(d + "attn2.to_q.weight"):
            ex.fuse(x + "attn2.qkv", [d + "attn2.to_q", d + "attn2.to_k", d + "attn2.to_v"])
            ex.rename(x + "attn2.ln_q", d + "attn2.norm_q", ["weight"])
            ex.rename(x + "attn2.ln_k", d + "attn2.norm_k", ["weight"])
            ex.rename(x + "attn2.proj", d + "attn2.to_out.0")
        ex.rename(x + "adaLN_modulation.1", d + "norm1.linear")
        if i == last:  # the last context block is a continuous AdaLayerNorm: (shift, scale) order
            for param in ("weight", "bias"):
                ex.out[f"{c}adaLN_modulation.1.{param}"] = _shift_scale(ex.take(f"{d}norm1_context.linear.{param}"))
        else:
            ex.rename(c + "adaLN_modulation.1", d + "norm1_context.linear")
        ex.rename(x + "mlp.fc1", d + "ff.net.0.proj")
        ex.rename(x + "mlp.fc2", d + "ff.net.2")
        ex.rename(c + "mlp.fc1", d + "ff_context.net.0.proj")
        ex.rename(c + "mlp.fc2", d + "ff_context.net.2")
    ex.rename("final_layer.linear", "proj_out")
    for param in ("weight", "bias"):
        ex.out[f"final_layer.adaLN_modulation.1.{param}"] = _shift_scale(ex.take(f"norm_out.linear.{param}"))
    return ex.done(prefix)


def vae_to_ldm(model: AutoencoderKL, prefix: str = "") -> dict[str, torch.Tensor]:
    """A VAE in the LDM layout of BFL's ae.safetensors (attention as 1x1 convolutions)."""
    ex = _Exporter(model.state_dict())
    blocks = len(model.config.block_out_channels)
    for side in ("encoder", "decoder"):
        ex.rename(f"{side}.conv_in", f"{side}.conv_in")
        ex.rename(f"{side}.conv_out", f"{side}.conv_out")
        ex.rename(f"{side}.norm_out", f"{side}.conv_norm_out")
        for k in (0, 1):
            for layer in ("norm1", "conv1", "norm2", "conv2"):
                ex.rename(f"{side}.mid.block_{k + 1}.{layer}", f"{side}.mid_block.resnets.{k}.{layer}")
        attn = f"{side}.mid_block.attentions.0."
        ex.rename(f"{side}.mid.attn_1.norm", attn + "group_norm")
        for original, diffusers in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")):
            weight = ex.take(f"{attn}{diffusers}.weight")
            ex.out[f"{side}.mid.attn_1.{original}.weight"] = weight[:, :, None, None]
            ex.out[f"{side}.mid.attn_1.{original}.bias"] = ex.take(f"{attn}{diffusers}.bias")
    for i in range(blocks):
        for j in range(model.config.layers_per_block):
            for layer in ("norm1", "conv1", "norm2", "conv2", "conv_shortcut"):
                original = "nin_shortcut" if layer == "conv_shortcut" else layer
                ex.rename(f"encoder.down.{i}.block.{j}.{original}", f"encoder.down_blocks.{i}.resnets.{j}.{layer}")
        ex.rename(f"encoder.down.{i}.downsample.conv", f"encoder.down_blocks.{i}.downsamplers.0.conv")
        up = blocks - 1 - i  # the LDM decoder numbers its blocks from the bottom
        for j in range(model.config.layers_per_block + 1):
            for layer in ("norm1", "conv1", "norm2", "conv2", "conv_shortcut"):
                original = "nin_shortcut" if layer == "conv_shortcut" else layer
                ex.rename(f"decoder.up.{up}.block.{j}.{original}", f"decoder.up_blocks.{i}.resnets.{j}.{layer}")
        ex.rename(f"decoder.up.{up}.upsample.conv", f"decoder.up_blocks.{i}.upsamplers.0.conv")
    ex.rename("quant_conv", "quant_conv")
    ex.rename("post_quant_conv", "post_quant_conv")
    return ex.done(prefix)


def clip_comfy(model: CLIPTextModel | CLIPTextModelWithProjection, *, keep_projection: bool = True,
               prefix: str = "") -> dict[str, torch.Tensor]:
    """A CLIP text tower as ComfyUI saves it: transformers keys plus position ids and a logit scale."""
    tensors = {
        k if k.startswith(("text_model.", "text_projection.")) else f"text_model.{k}": v
        for k, v in model.state_dict().items()
        if keep_projection or k != "text_projection.weight"
    }
    tensors["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    tensors["logit_scale"] = torch.tensor(4.6052)
    return {prefix + k: v.contiguous() for k, v in tensors.items()}


def t5_comfy(model: T5EncoderModel, *, embedding_name: str = "shared.weight",
             prefix: str = "") -> dict[str, torch.Tensor]:
    """T5-XXL as ComfyUI saves it: the encoder and one copy of the tied token embedding."""
    tensors = {k: v for k, v in model.state_dict().items() if k not in ("shared.weight", "encoder.embed_tokens.weight")}
    tensors[embedding_name] = model.shared.weight
    return {prefix + k: v.detach().clone().contiguous() for k, v in tensors.items()}


def save(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, object] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, str(path), metadata=meta or None)
    return path


def entry(family: str, variant: str, parts: Mapping[str, Path], key_layout: str = "bfl") -> ModelEntry:
    main = parts.get("checkpoint", parts.get("transformer"))
    return ModelEntry(
        name=Path(main).stem, family=family, variant=variant, format="single-file", path=Path(main),
        size_bytes=sum(Path(p).stat().st_size for p in parts.values() if Path(p).exists()),
        status=READY, parts=dict(parts), key_layout=key_layout,
    )


# ------------------------------------------------------------------------------ model trees
@dataclass
class TinyModel:
    """The files of one tiny model, its catalog entry and the originals to compare against."""

    root: Path
    entry: ModelEntry
    originals: dict[str, torch.nn.Module] = field(default_factory=dict)


def write_flux(root: Path, *, guidance: bool = True, prefix: str = "model.diffusion_model.",
               layout: str = "bfl", tokenizer: bool = True, metadata: Mapping[str, object] | None = None,
               **flux_kwargs) -> TinyModel:
    """A ComfyUI-style tree: diffusion_models/, text_encoders/ (+ t5-tokenizer/), vae/."""
    flux, vae = tiny_flux(guidance=guidance, **flux_kwargs), tiny_vae(seed=1)
    clip, t5 = tiny_clip(projection=False, seed=2), tiny_t5(seed=3)
    weights = flux_to_bfl(flux, prefix) if layout == "bfl" else dict(flux.state_dict())
    parts = {
        "transformer": save(root / "diffusion_models" / "flux-tiny.safetensors", weights, metadata),
        "clip_l": save(root / "text_encoders" / "clip_l.safetensors", clip_comfy(clip),
                       {"easel.num_attention_heads": 4}),
        "t5xxl": save(root / "text_encoders" / "t5xxl_fp16.safetensors", t5_comfy(t5)),
        "vae": save(root / "vae" / "ae.safetensors", vae_to_ldm(vae)),
    }
    if tokenizer:
        write_t5_tokenizer(root / "text_encoders" / "t5-tokenizer")
    variant = "flux-dev" if guidance else "flux-schnell"
    return TinyModel(root, entry("flux", variant, parts, layout),
                     {"transformer": flux, "vae": vae, "clip_l": clip, "t5xxl": t5})


def _sd3_encoders(seed: int = 10, clip_l_heads: int = 4) -> dict[str, torch.nn.Module]:
    return {
        "clip_l": tiny_clip(hidden=32, heads=clip_l_heads, act="quick_gelu", seed=seed),
        # width 32 with no metadata: one head per 64 channels, at least one
        "clip_g": tiny_clip(hidden=32, heads=1, act="gelu", seed=seed + 1),
        "t5xxl": tiny_t5(d_model=64, seed=seed + 2),
        "vae": tiny_vae(seed=seed + 3),
    }


def write_sd3(root: Path, *, dual_attention: bool = True, qk_norm: bool = True, with_t5: bool = True,
              clip_l_projection: bool = True) -> TinyModel:
    """Separate files, as ComfyUI's SD3.5 example lays them out."""
    originals = {"transformer": tiny_sd3(dual_attention=dual_attention, qk_norm=qk_norm, seed=9), **_sd3_encoders()}
    parts = {
        "transformer": save(root / "diffusion_models" / "sd3.5-tiny.safetensors",
                            sd3_to_original(originals["transformer"], "model.diffusion_model.")),
        "clip_l": save(root / "text_encoders" / "clip_l.safetensors",
                       clip_comfy(originals["clip_l"], keep_projection=clip_l_projection),
                       {"easel.num_attention_heads": 4}),
        "clip_g": save(root / "text_encoders" / "clip_g.safetensors", clip_comfy(originals["clip_g"])),
        "vae": save(root / "vae" / "sd3.5_vae.safetensors", vae_to_ldm(originals["vae"])),
    }
    if with_t5:
        parts["t5xxl"] = save(root / "text_encoders" / "t5xxl_fp16.safetensors", t5_comfy(originals["t5xxl"]))
        write_t5_tokenizer(root / "text_encoders" / "t5-tokenizer")
    variant = "sd3.5-medium" if dual_attention else "sd3.5-large"
    return TinyModel(root, entry("sd3", variant, parts), originals)


def write_sd3_checkpoint(root: Path) -> TinyModel:
    """An all-in-one SD3.5 checkpoint: transformer, the three text encoders and the VAE in one file.

    Its T5 stores the token embedding as encoder.embed_tokens.weight (no shared.weight).
    """
    originals = {"transformer": tiny_sd3(seed=20), **_sd3_encoders(seed=21, clip_l_heads=1)}
    tensors = {
        **sd3_to_original(originals["transformer"], "model.diffusion_model."),
        **clip_comfy(originals["clip_l"], prefix="text_encoders.clip_l.transformer."),
        **clip_comfy(originals["clip_g"], prefix="text_encoders.clip_g.transformer."),
        **t5_comfy(originals["t5xxl"], embedding_name="encoder.embed_tokens.weight",
                   prefix="text_encoders.t5xxl.transformer."),
        **vae_to_ldm(originals["vae"], prefix="first_stage_model."),
    }
    path = save(root / "checkpoints" / "sd3.5-tiny-aio.safetensors", tensors)
    write_t5_tokenizer(root / "text_encoders" / "t5-tokenizer")
    return TinyModel(root, entry("sd3", "sd3.5-medium", {"checkpoint": path}), originals)


# ------------------------------------------------------------------------------ model inputs
def flux_inputs(model: FluxTransformer2DModel, seed: int = 0) -> dict[str, torch.Tensor]:
    """A 4x4-token image and 8 text tokens, with real position ids so the rotary split matters."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    img_ids = torch.stack([torch.zeros(16), rows.flatten().float(), cols.flatten().float()], dim=1)
    inputs = {
        "hidden_states": torch.randn(1, 16, model.config.in_channels, generator=g),
        "encoder_hidden_states": torch.randn(1, 8, model.config.joint_attention_dim, generator=g),
        "pooled_projections": torch.randn(1, model.config.pooled_projection_dim, generator=g),
        "timestep": torch.tensor([0.7]),
        "img_ids": img_ids,
        "txt_ids": torch.zeros(8, 3),
    }
    if model.config.guidance_embeds:
        inputs["guidance"] = torch.tensor([3.5])
    return inputs


def sd3_inputs(model: SD3Transformer2DModel, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": torch.randn(1, model.config.in_channels, 8, 8, generator=g),
        "encoder_hidden_states": torch.randn(1, 10, model.config.joint_attention_dim, generator=g),
        "pooled_projections": torch.randn(1, model.config.pooled_projection_dim, generator=g),
        "timestep": torch.tensor([500.0]),
    }


def save_gguf(path: Path, tensors: Mapping[str, torch.Tensor], quant: str = "Q8_0", arch: str = "flux") -> Path:
    """A GGUF file as city96's convert script writes one: weight matrices in `quant`, the rest in F32."""
    import gguf

    qtype = gguf.GGMLQuantizationType[quant]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    for name, tensor in tensors.items():
        array = tensor.detach().float().numpy()
        if array.ndim == 2 and array.shape[-1] % block == 0:
            packed = gguf.quants.quantize(array, qtype)
            writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=qtype)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def assert_same_flux_output(loaded: FluxTransformer2DModel, original: FluxTransformer2DModel) -> None:
    """The two transformers compute the same output for one input (which is not flat)."""
    with torch.no_grad():
        expected = original(**flux_inputs(original)).sample
        actual = loaded(**flux_inputs(loaded)).sample
    assert expected.std() > 0.01
    torch.testing.assert_close(actual, expected)
