"""Measured activation memory against the memory plan's estimates, over batch x size, on a CUDA GPU.

  python bench/gpu_memory_workload.py [--side 1024] [--batches 1 2 4 8]

The plan scales two 1024² measurements by the pixels of a job (app/runtime/workload.py): the 16-channel
VAE decode (2.38 GiB) and the FLUX transformer's activations (0.46 GiB). This prints, for each batch, the
peak memory over the weights for: one transformer forward (full width, two double and two single blocks:
activations do not pile up across blocks under inference_mode), a whole-batch VAE decode, a sliced one,
and a tiled decode at twice the side; next to each, what the plan reserves. Random bf16 weights: memory
does not depend on their values. Also prints read_memory's free figure beside torch.cuda.mem_get_info.
`--device cpu --side 128` runs the same code on a CPU (no peaks) as a smoke test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GIB = 2**30


def peak_over(device: str, fn) -> float:
    """GiB allocated at the peak of `fn()` above what was allocated before it."""
    import torch

    if device != "cuda":
        fn()
        return 0.0
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / GIB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()

    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from app.families.single_file import released_config
    from app.runtime.devices import detect_device, read_memory
    from app.runtime.workload import DENOISE_ACTIVATIONS, Workload, vae_decode_reserve

    def config(component: str) -> dict:
        return {k: v for k, v in released_config("flux-dev", component).items() if not k.startswith("_")}

    bf16, dev = torch.bfloat16, torch.device(args.device)
    vae = AutoencoderKL(**config("vae")).to(dev, bf16).eval()
    tr_config = {**config("transformer"), "num_layers": 2, "num_single_layers": 2}
    transformer = FluxTransformer2DModel(**tr_config).to(dev, bf16).eval()
    side, channels = args.side, vae.config.latent_channels
    if args.device == "cuda":
        device = detect_device("cuda")
        free, _ = torch.cuda.mem_get_info()
        print(f"read_memory free {read_memory(device).free_memory / GIB:.2f} GiB, "
              f"mem_get_info free {free / GIB:.2f} GiB", flush=True)

    def forward(batch: int):
        tokens = (side // 16) ** 2
        hidden = torch.randn(batch, tokens, tr_config["in_channels"], device=dev, dtype=bf16)
        ids = torch.zeros(tokens, 3, device=dev)
        text = torch.randn(batch, 512, tr_config["joint_attention_dim"], device=dev, dtype=bf16)
        pooled = torch.randn(batch, tr_config["pooled_projection_dim"], device=dev, dtype=bf16)
        with torch.inference_mode():
            transformer(hidden_states=hidden, encoder_hidden_states=text, pooled_projections=pooled,
                        timestep=torch.ones(batch, device=dev), img_ids=ids, txt_ids=torch.zeros(512, 3, device=dev),
                        guidance=torch.ones(batch, device=dev))

    def decode(batch: int, s: int):
        latents = torch.randn(batch, channels, s // 8, s // 8, device=dev, dtype=bf16)
        with torch.inference_mode():
            vae.decode(latents)

    print("GiB over the weights, measured (the plan's estimate)")
    print("batch  forward            decode             sliced             tiled, 2x side")
    for batch in args.batches:
        job, big = Workload(batch, side, side), Workload(batch, 2 * side, 2 * side)
        row = [peak_over(args.device, lambda: forward(batch)), DENOISE_ACTIVATIONS * batch * job.image_scale / GIB]
        vae.disable_slicing(), vae.disable_tiling()
        row += [peak_over(args.device, lambda: decode(batch, side)), vae_decode_reserve("bfloat16", job) / GIB]
        vae.enable_slicing()
        row += [peak_over(args.device, lambda: decode(batch, side)),
                vae_decode_reserve("bfloat16", job, sliced=True) / GIB]
        vae.enable_tiling()
        row += [peak_over(args.device, lambda: decode(batch, 2 * side)),
                vae_decode_reserve("bfloat16", big, sliced=True, tiled=True) / GIB]
        print(f"{batch:5}  " + "  ".join(f"{row[i]:6.2f} ({row[i + 1]:6.2f})" for i in range(0, 8, 2)), flush=True)


if __name__ == "__main__":
    main()
