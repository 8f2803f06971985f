"""The untrained pieces of the shapes demo models: VAE, frozen random text encoders, transformers, pipelines.

The architectures are the released ones (FLUX.1 and SD3.5 classes, the real VAE shape: 4 blocks, 16
latent channels, factor 8) at tiny widths. The text encoders stay random and frozen: a random T5 still
maps different words to different vectors, and the transformer learns to read them (random CLIP pooled
vectors are nearly collinear, so little flows through CLIP). CLIP is kept narrow (hidden 16) because
its 49,408-row embedding, with the 3.6 MB tokenizer.json saved beside each CLIP, is most of a folder.
"""

from __future__ import annotations

from typing import Any

import torch

from app.demo.build import CLIP_CONFIG, VAE_CONFIG
from app.demo.tokenizers import build_demo_t5_tokenizer, load_clip_tokenizer

# T5 tokens fed in training and written to easel.json: inference must pad to the same length, since
# FLUX gives T5 no attention mask (the padding changes the embeddings). The longest caption is 12 tokens.
MAX_SEQUENCE_LENGTH = 16

CLIP_HIDDEN = 16
T5_D_MODEL = 64

SHAPES_CLIP_CONFIG = {**CLIP_CONFIG, "hidden_size": CLIP_HIDDEN, "intermediate_size": 2 * CLIP_HIDDEN,
                      "projection_dim": CLIP_HIDDEN, "num_attention_heads": 2}

FLUX_CONFIG = dict(
    patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=32,
    num_attention_heads=4, joint_attention_dim=T5_D_MODEL, pooled_projection_dim=CLIP_HIDDEN,
    axes_dims_rope=(8, 12, 12), guidance_embeds=False,
)
# SD3 concatenates the two CLIPs' hidden states (2 × 32) and pads them to T5's width, so T5's width
# must be at least 64; the pooled vector is the two CLIP projections side by side.
SD3_CONFIG = dict(
    sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=4, attention_head_dim=32,
    num_attention_heads=4, joint_attention_dim=T5_D_MODEL, caption_projection_dim=128,
    pooled_projection_dim=2 * CLIP_HIDDEN, pos_embed_max_size=64, qk_norm="rms_norm",
)


def build_vae(widths: tuple[int, ...]):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**{**VAE_CONFIG, "block_out_channels": tuple(widths)})


def build_scheduler(shift: float = 1.0):
    """Plain flow-matching Euler with a fixed shift: the tiny models are trained at 64–128 px only."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=shift, use_dynamic_shifting=False)


def _clip(with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(CLIPTextConfig(**SHAPES_CLIP_CONFIG))


def _t5():
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=len(build_demo_t5_tokenizer()), d_model=T5_D_MODEL, d_kv=32, d_ff=2 * T5_D_MODEL,
                   num_layers=2, num_heads=T5_D_MODEL // 32, feed_forward_proj="gated-gelu",
                   relative_attention_num_buckets=8, dense_act_fn="gelu_new", is_gated_act=True,
                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(cfg)


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    module.requires_grad_(False)
    return module.eval()


def build_flux_pipeline(vae, seed: int):
    """A FluxPipeline with frozen random text encoders and an untrained transformer, seeded."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxPipeline(
        scheduler=build_scheduler(), vae=vae,
        text_encoder=_frozen(_clip(False)), tokenizer=load_clip_tokenizer(),
        text_encoder_2=_frozen(_t5()), tokenizer_2=build_demo_t5_tokenizer(),
        transformer=FluxTransformer2DModel(**FLUX_CONFIG),
    )


def build_sd3_pipeline(vae, seed: int):
    """A StableDiffusion3Pipeline with frozen random CLIP-L/CLIP-G/T5 stand-ins and an untrained transformer."""
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    return StableDiffusion3Pipeline(
        scheduler=build_scheduler(), vae=vae,
        text_encoder=_frozen(_clip(True)), tokenizer=load_clip_tokenizer(),
        text_encoder_2=_frozen(_clip(True)), tokenizer_2=load_clip_tokenizer(pad_token="!"),
        text_encoder_3=_frozen(_t5()), tokenizer_3=build_demo_t5_tokenizer(),
        transformer=SD3Transformer2DModel(**SD3_CONFIG),
    )


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(pipe: Any) -> dict[str, int]:
    """Parameter counts of a pipeline's modules, for the report."""
    return {name: count_params(m) for name, m in pipe.components.items() if isinstance(m, torch.nn.Module)}
