"""Tiny FLUX pipelines built from configs: the real component classes and VAE layout, a few KB of weights."""

import pytest


def build_tiny_flux(*, text_encoders: bool = False):
    """A FluxPipeline with a one-block transformer, the 16-channel 4-block VAE, and optionally tiny
    CLIP/T5 encoders (no tokenizers: tests pass embeddings or call the encoders directly)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8),
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        latent_channels=16,
        norm_num_groups=8,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.1159,
        scaling_factor=0.3611,
    )
    clip, t5 = (_tiny_clip(), _tiny_t5()) if text_encoders else (None, None)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=None,
        text_encoder_2=t5,
        tokenizer_2=None,
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _tiny_clip():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=100,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=32,
        max_position_embeddings=77,
    )
    return CLIPTextModel(config).eval()  # as from_pretrained leaves it: no dropout


def _tiny_t5():
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    return T5EncoderModel(config).eval()  # as from_pretrained leaves it: no dropout


def generate_tiny(pipe):
    """One 64×64 image from fixed embeddings (made on the CPU, sent to the execution device), as a tensor."""
    import torch

    device = pipe._execution_device
    return pipe(
        prompt_embeds=torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1)).to(device),
        pooled_prompt_embeds=torch.randn(1, 32, generator=torch.Generator().manual_seed(2)).to(device),
        height=64,
        width=64,
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).images


@pytest.fixture
def tiny_flux():
    return build_tiny_flux()


@pytest.fixture
def tiny_flux_with_encoders():
    return build_tiny_flux(text_encoders=True)


@pytest.fixture
def generate():
    return generate_tiny
