"""Build the embedded demo models: tiny FLUX and SD3.5 diffusers folders with random weights.

They use the released architectures' classes with small widths (and the real VAE shape: 4 blocks,
16 latent channels, factor 8), so every code path that serves a real model serves them too, on a CPU,
in well under a second per 256 px image. Their pictures are noise-like: they show that Easel works,
not what a trained model draws.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from app.demo.tokenizers import build_demo_t5_tokenizer, load_clip_tokenizer

DEMO_LABEL = "demo (random weights)"
DEMO_DIRNAME = "demo"
FLUX_DEMO = "easel-demo-flux"
SD3_DEMO = "easel-demo-sd3"

VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 16, 32, 32), layers_per_block=1, latent_channels=16, norm_num_groups=8,
    sample_size=256, use_quant_conv=False, use_post_quant_conv=False,
    shift_factor=0.0, scaling_factor=1.0,
)
CLIP_CONFIG = dict(
    vocab_size=49408, hidden_size=64, intermediate_size=128, projection_dim=64, num_hidden_layers=2,
    num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
    bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)
FLUX_TRANSFORMER_CONFIG = dict(
    patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=32,
    num_attention_heads=4, joint_attention_dim=64, pooled_projection_dim=64, axes_dims_rope=(8, 12, 12),
    guidance_embeds=False,
)
SD3_TRANSFORMER_CONFIG = dict(
    sample_size=32, patch_size=2, in_channels=16, num_layers=4, attention_head_dim=32, num_attention_heads=4,
    joint_attention_dim=128, caption_projection_dim=128, pooled_projection_dim=128, out_channels=16,
    pos_embed_max_size=128, qk_norm="rms_norm",
)
# What the demo's family adapters must use at inference (read back from easel.json).
FLUX_MAX_SEQUENCE_LENGTH = 32
SD3_MAX_SEQUENCE_LENGTH = 32


SHIPPED_DEMOS = ("easel-demo-shapes-flux", "easel-demo-shapes-sd3")  # trained, committed (app/demo/train.py)


def demo_root(models_dir: Path) -> Path:
    return Path(models_dir) / DEMO_DIRNAME


def shipped_demo_models(models_dir: Path) -> list[Path]:
    """The trained demo folders present under models/demo (the random builders are the fallback)."""
    root = demo_root(models_dir)
    return [root / name for name in SHIPPED_DEMOS if (root / name / "model_index.json").is_file()]


def ensure_demo_models(models_dir: Path, *, seed: int = 0) -> list[Path]:
    """Build any demo folder that is missing; return the demo folders. Cheap when they exist."""
    root = demo_root(models_dir)
    wanted = {FLUX_DEMO: build_flux_demo, SD3_DEMO: build_sd3_demo}
    out = []
    for name, builder in wanted.items():
        folder = root / name
        if not (folder / "model_index.json").is_file():
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            build_atomically(folder, lambda tmp, b=builder: b(tmp, seed=seed))
        out.append(folder)
    return out


def build_atomically(folder: Path, build: Callable[[Path], Any]) -> Any:
    """Run `build(tmp)` in a temporary sibling folder, then rename it to `folder` (replacing it), so a
    half-written model folder is never picked up; returns what `build` returned."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        result = build(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a models folder is not
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return result
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def _clip(with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(CLIPTextConfig(**CLIP_CONFIG))


def _t5(d_model: int):
    from transformers import T5Config, T5EncoderModel

    tok_len = len(build_demo_t5_tokenizer())
    cfg = T5Config(vocab_size=tok_len, d_model=d_model, d_kv=32, d_ff=d_model * 2, num_layers=2, num_heads=d_model // 32,
                   feed_forward_proj="gated-gelu", relative_attention_num_buckets=8, dense_act_fn="gelu_new",
                   is_gated_act=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(cfg)


def _write_label(folder: Path, name: str, family: str, variant: str, max_sequence_length: int) -> None:
    meta = {"name": name, "label": DEMO_LABEL, "demo": True, "family": family, "variant": variant,
            "max_sequence_length": max_sequence_length,
            "defaults": {"steps": 4, "width": 256, "height": 256}}
    (folder / "easel.json").write_text(json.dumps(meta, indent=2) + "\n")


def build_flux_demo(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
        vae=_vae(), text_encoder=_clip(False), tokenizer=load_clip_tokenizer(),
        text_encoder_2=_t5(64), tokenizer_2=build_demo_t5_tokenizer(),
        transformer=FluxTransformer2DModel(**FLUX_TRANSFORMER_CONFIG),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _write_label(folder, FLUX_DEMO, "flux", "flux-schnell", FLUX_MAX_SEQUENCE_LENGTH)
    return folder


def build_sd3_demo(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(), text_encoder=_clip(True), tokenizer=load_clip_tokenizer(),
        text_encoder_2=_clip(True), tokenizer_2=load_clip_tokenizer(pad_token="!"),
        text_encoder_3=_t5(128), tokenizer_3=build_demo_t5_tokenizer(),
        transformer=SD3Transformer2DModel(**SD3_TRANSFORMER_CONFIG),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _write_label(folder, SD3_DEMO, "sd3", "sd3.5-large", SD3_MAX_SEQUENCE_LENGTH)
    return folder


def rebuild_demo_models(models_dir: Path, *, seed: int = 0) -> list[Path]:
    root = demo_root(models_dir)
    for name in (FLUX_DEMO, SD3_DEMO):
        if (root / name).exists():
            shutil.rmtree(root / name)
    return ensure_demo_models(models_dir, seed=seed)
