"""Train the demo LoRAs: `python -m app.demo.train_lora --out models/loras [--family flux|sd3|both]
[--config full|smoke] [--seed 0] [--device cpu|cuda] [--base models/demo] [--pool-cache FILE]`.

Each LoRA teaches one shipped shapes demo model a colour it never saw, purple, with the base model
frozen and a LoRA on the transformer's attention, feed-forward, input and output layers. Each round
trains on the flow objective, then tunes through the model's own sampler by the colours the frozen
decoder draws (app/demo/train_lora_tune.py). Training reuses the base trainer:
prompts embedded by the pipeline's own `encode_prompt` at the model's max_sequence_length, the
rectified-flow objective, caption dropout (so SD3's CFG keeps working) and weight EMA. Batches mix
purple captions with the base captions, so the LoRA does not turn everything purple.

After each round the LoRA is saved in the diffusers/PEFT key layout ("transformer.<module>.lora_A.weight",
fp16, alpha = rank so its scale is 1), loaded into a fresh copy of the shipped model with
`load_lora_weights` and judged by its pixels; training stops once the targets are met. The exit status
is 1 when a LoRA missed them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from app.demo.shapes import CAPTIONS, SIDE_CAPTIONS
from app.demo.train_flow import encode_captions, sample_sigmas, train_transformer, velocity_losses
from app.demo.train_lora_config import CONFIGS, LoraEval, LoraTrainConfig
from app.demo.train_lora_data import build_pool, new_colour_specs
from app.demo.train_lora_eval import describe, judge_lora, load_demo
from app.demo.train_lora_tune import tune_through_sampler
from app.demo.train_vae import LatentPool

Log = Callable[[str], None]

COLOUR = "purple"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = PROJECT_ROOT / "models" / "demo"

# The layers the LoRA adapts, by name; a name a family lacks is skipped (SD3 has no proj_mlp). On the
# attention projections alone a rank-4 LoRA left the loss on purple captions at twice the base colours'
# after 1,800 steps: a colour the VAE's latents never held needs the feed-forward, input and output
# layers too.
TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
           "proj_mlp", "proj_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
           "x_embedder", "context_embedder")
FAMILIES: dict[str, dict[str, Any]] = {
    "flux": {"model": "easel-demo-shapes-flux", "file": "demo-purple-flux", "targets": TARGETS,
             "sd_version": "Flux.1 S"},
    "sd3": {"model": "easel-demo-shapes-sd3", "file": "demo-purple-sd3", "targets": TARGETS,
            "sd_version": "SD 3.5 Large"},
}


def _print(line: str) -> None:
    print(line, flush=True)


def lora_captions(colour: str = COLOUR) -> list[str]:
    """Every caption the LoRA trains on: the new colour's, the base ones, and "" (the dropped caption)."""
    new = [s.caption for group in new_colour_specs(colour) for s in group]
    return [*new, *CAPTIONS, *SIDE_CAPTIONS, ""]


def lora_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's weights in the diffusers key layout, fp16."""
    from peft import get_peft_model_state_dict

    return {f"transformer.{k}": v.detach().to("cpu", torch.float16).contiguous()
            for k, v in get_peft_model_state_dict(transformer).items()}


def file_metadata(family: str, rank: int, targets: list[str], trained_pictures: int) -> dict[str, str]:
    """Safetensors metadata: Easel's own keys, kohya's usual ones, and diffusers' adapter config."""
    model = FAMILIES[family]["model"]
    adapter = {"transformer.r": rank, "transformer.lora_alpha": rank, "transformer.target_modules": targets}
    return {"format": "pt", "easel.family": family, "easel.base_model": model, "easel.trigger_words": COLOUR,
            "lora_rank": str(rank), "lora_alpha": str(rank), "ss_network_dim": str(rank),
            "ss_network_alpha": str(rank), "ss_base_model_version": FAMILIES[family]["sd_version"],
            "ss_sd_model_name": model,
            "ss_tag_frequency": json.dumps({"shapes": {COLOUR: trained_pictures}}),
            "lora_adapter_metadata": json.dumps(adapter, sort_keys=True)}


def sidecar(family: str, judged: dict[str, Any]) -> dict[str, Any]:
    """The civitai/A1111-style .json kept beside the file."""
    return {"description": f"Teaches {FAMILIES[family]['model']} the colour {COLOUR} (RGB 140, 40, 200), "
                           f"which the base model never saw: write '{COLOUR}' for a shape or a background.",
            "activation text": COLOUR, "trained words": [COLOUR], "sd version": FAMILIES[family]["sd_version"],
            "base model": FAMILIES[family]["model"], "preferred weight": 1.0, "notes": describe(judged, COLOUR)}


def save_lora(transformer: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write the file atomically (a temporary sibling renamed into place)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(lora_state_dict(transformer), tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@torch.no_grad()
def held_out_loss(pipe: Any, family: str, pool: Any, table: Any, new_captions: int, size: int, n: int = 128,
                  seed: int = 1234) -> dict[str, float]:
    """The training objective on one fixed draw from the pool (same latents, noise and noise levels every
    time), apart for the new colour's captions (the first `new_captions` of the table) and the others."""
    gen = torch.Generator().manual_seed(seed)
    device = table.embeds.device
    x0, idx = pool.sample(size, n, gen, device)
    sigma = sample_sigmas(n, gen, 0.1).to(device)
    noise = torch.randn(x0.shape, generator=gen).to(device)
    per = velocity_losses(pipe, family, x0, sigma, noise, table.embeds[idx], table.pooled[idx], table.text_ids).cpu()
    new = idx.cpu() < new_captions
    return {"new": per[new].mean().item(), "ordinary": per[~new].mean().item()}


def _weights_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def pool_for(vae: Any, cfg: LoraTrainConfig, captions: list[str], device: torch.device, seed: int,
             cache: Path | None, log: Log) -> tuple[Any, dict[str, Any]]:
    """The latent pool, read from `cache` when it was saved for the same VAE weights, stage, captions and
    seed (building it is most of a run's first ten minutes), else built and saved there."""
    key = json.dumps({"vae": _weights_digest(vae), "latents": dataclasses.asdict(cfg.latents), "sizes": cfg.sizes,
                      "captions": captions, "seed": seed, "colour": COLOUR}, sort_keys=True)
    if cache is not None and cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            log(f"[latents] pool read from {cache}")
            return LatentPool(**saved["pool"]), json.loads(saved["report"])
        log(f"[latents] {cache} was saved for other settings: building the pool again")
    pool, report = build_pool(vae, COLOUR, cfg.latents, cfg.sizes, captions, device, seed, log)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fields = {f.name: getattr(pool, f.name) for f in dataclasses.fields(pool)}
        torch.save({"key": key, "pool": fields, "report": json.dumps(report)}, cache.with_suffix(".tmp"))
        os.replace(cache.with_suffix(".tmp"), cache)
    return pool, report


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def _add_lora(transformer: Any, rank: int, targets: tuple[str, ...], seed: int) -> list[str]:
    """Add the adapter (base frozen, B at zero so it starts as the base); return the adapted modules."""
    from peft import LoraConfig

    torch.manual_seed(seed)
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), lora_dropout=0.0))
    return sorted({name.rsplit(".lora_", 1)[0] for name, _ in transformer.named_parameters() if ".lora_" in name})


def round_score(judged: dict[str, Any], ev: LoraEval) -> tuple[bool, float]:
    """How good a round's LoRA is: targets met first, then its weaker figure against its target."""
    w = judged["with"]
    return judged["met"], min(w["headline"] / ev.min_with, w["control"] / ev.min_control)


def train_family(family: str, cfg: LoraTrainConfig, out_dir: Path, base_dir: Path, device: torch.device, seed: int,
                 pools: dict[str, Any], pool_cache: Path | None, log: Log) -> dict[str, Any]:
    """Train, save and judge one family's LoRA; return its figures and where it went."""
    spec = FAMILIES[family]
    folder = base_dir / spec["model"]
    start = time.perf_counter()
    pipe, meta = load_demo(folder, device)
    captions = lora_captions()
    cached = pools.get("pool")
    if cached is None or not _same_weights(cached[0], pipe.vae):
        pool, latents = pool_for(pipe.vae, cfg, captions, device, seed, pool_cache, log)
        pools["pool"] = (pipe.vae, pool, latents)
    _, pool, latents = pools["pool"]
    table = encode_captions(pipe, family, captions, meta["max_sequence_length"], device)
    modules = _add_lora(pipe.transformer, cfg.rank, spec["targets"], seed + 1)
    log(f"[{family}] LoRA rank {cfg.rank} on {len(modules)} layers "
        f"({sum(p.numel() for n, p in pipe.transformer.named_parameters() if '.lora_' in n)} parameters)")
    stage = getattr(cfg, family)
    path = out_dir / f"{spec['file']}.safetensors"
    trained_pictures = sum(v["new"] for v in latents["sizes"].values())
    n_new = sum(len(group) for group in new_colour_specs(COLOUR))  # they come first in `captions`
    held_out = [held_out_loss(pipe, family, pool, table, n_new, min(cfg.sizes))]
    rounds, base, best, train_seconds = [], None, None, 0.0
    for r in range(cfg.max_rounds):
        for name, p in pipe.transformer.named_parameters():  # train_transformer freezes everything at the end
            p.requires_grad_(".lora_" in name)
        stats = train_transformer(pipe, family, pool, table, stage, cfg.sizes, device, seed + 2 + r, log)
        tuned = tune_through_sampler(pipe, family, pool, table, captions, COLOUR, cfg.tune[family], meta["defaults"], device,
                                     seed + 100 + r, log)
        train_seconds += stats["seconds"] + tuned["seconds"]
        held_out.append(held_out_loss(pipe, family, pool, table, n_new, min(cfg.sizes)))
        log(f"[{family}] held-out loss, {COLOUR} captions {held_out[0]['new']:.3f} -> {held_out[-1]['new']:.3f}, "
            f"others {held_out[0]['ordinary']:.3f} -> {held_out[-1]['ordinary']:.3f}")
        with tempfile.TemporaryDirectory() as tmp:
            candidate = Path(tmp) / path.name
            save_lora(pipe.transformer, candidate, file_metadata(family, cfg.rank, modules, trained_pictures))
            judged = judge_lora(folder, candidate, COLOUR, cfg.eval, device, base)
            base = judged["without"]
            rounds.append({"steps": stats["steps"], "ms_per_step": stats["ms_per_step"], "losses": stats["losses"],
                           "tune_steps": tuned["steps"], "tune_ms_per_step": tuned["ms_per_step"], "judged": judged})
            log(f"[{family}] round {r + 1}: {describe(judged, COLOUR)} ({judged['seconds']:.0f}s judging)")
            if best is None or round_score(judged, cfg.eval) > round_score(best, cfg.eval):
                best = judged
                save_lora(pipe.transformer, path, file_metadata(family, cfg.rank, modules, trained_pictures))
                path.with_suffix(".json").write_text(json.dumps(sidecar(family, judged), indent=2) + "\n")
            if judged["met"]:
                break
    return {"family": family, "file": str(path), "bytes": path.stat().st_size, "met": best["met"], "judged": best,
            "rounds": rounds, "held_out": held_out, "steps": sum(x["steps"] for x in rounds), "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start, "layers": modules, "latents": latents}


def train_loras(out_dir: Path | str, families: tuple[str, ...] = ("flux", "sd3"), config: LoraTrainConfig | str = "full",
                device: str | torch.device = "cpu", seed: int = 0, base_dir: Path | str = DEMO_DIR,
                pool_cache: Path | str | None = None, log: Log = _print) -> dict[str, Any]:
    """Train, judge and save the demo LoRA of each family into `out_dir`; return the report."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    device, out_dir, base_dir = torch.device(device), Path(out_dir), Path(base_dir)
    start, pools = time.perf_counter(), {}
    cache = Path(pool_cache) if pool_cache is not None else None
    results = {f: train_family(f, cfg, out_dir, base_dir, device, seed, pools, cache, log) for f in families}
    pool_seconds = pools["pool"][2]["seconds"]
    log(f"latent pool (shared): {pool_seconds:.0f}s")
    for f, res in results.items():
        log(f"[{f}] {res['file']} ({res['bytes'] / 1e3:.0f} kB): {res['steps']} steps in "
            f"{res['train_seconds'] / 60:.1f} min training, {res['seconds'] / 60:.1f} min in all; "
            f"{describe(res['judged'], COLOUR)}")
    return {"config": cfg.name, "seed": seed, "device": str(device), "families": results,
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.demo.train_lora", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "models" / "loras", help="folder for the LoRA files")
    p.add_argument("--family", choices=("flux", "sd3", "both"), default="both")
    p.add_argument("--config", choices=sorted(CONFIGS), default="full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--base", type=Path, default=DEMO_DIR, help="folder holding the shipped demo models")
    p.add_argument("--pool-cache", type=Path, default=None,
                   help="file to keep the latent pool in between runs (rebuilt when the settings differ)")
    args = p.parse_args(argv)
    missing = [FAMILIES[f]["model"] for f in FAMILIES if args.family in (f, "both")
               if not (args.base / FAMILIES[f]["model"] / "model_index.json").is_file()]
    if missing:
        p.error(f"no demo model {', '.join(missing)} in {args.base} (train them with python -m app.demo.train)")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):  # loading bars and "no text encoder LoRA keys" notes
        lib.disable_progress_bar()
        lib.set_verbosity_error()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    families = ("flux", "sd3") if args.family == "both" else (args.family,)
    report = train_loras(args.out, families, args.config, device, args.seed, args.base, args.pool_cache)
    return 0 if all(r["met"] for r in report["families"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
