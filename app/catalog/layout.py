"""Which folder of a models tree holds what, in ComfyUI's and A1111's layouts."""

from __future__ import annotations

from pathlib import Path

# Roles of the folders of a models tree.
MODELS, TEXT_ENCODERS, VAE, LORAS, UPSCALERS = "models", "text_encoders", "vae", "loras", "upscale_models"
CONTROLNET = "controlnet"
ROLES = (MODELS, TEXT_ENCODERS, VAE, LORAS, UPSCALERS, CONTROLNET)

# Folder names (compared case-insensitively) -> role. ComfyUI, then A1111 / Forge spellings.
FOLDER_ROLES = {
    "diffusion_models": MODELS, "unet": MODELS, "checkpoints": MODELS, "stable-diffusion": MODELS,
    "text_encoders": TEXT_ENCODERS, "clip": TEXT_ENCODERS, "text_encoder": TEXT_ENCODERS,
    "vae": VAE,
    "loras": LORAS, "lora": LORAS, "lycoris": LORAS,
    "upscale_models": UPSCALERS, "esrgan": UPSCALERS, "realesrgan": UPSCALERS, "swinir": UPSCALERS,
    "dat": UPSCALERS,
    "controlnet": CONTROLNET,  # ComfyUI's controlnet/, A1111's and Forge's ControlNet/
}

# Folders of ComfyUI's and A1111's models trees that hold things Easel does not use (compared
# case-insensitively) -> what they hold. The listing counts their model files, so none is a mystery.
UNUSED_FOLDERS = {
    "embeddings": "textual inversion embeddings", "hypernetworks": "hypernetworks",
    "t2i_adapter": "T2I adapters", "ipadapter": "IP-Adapter models",
    "clip_vision": "CLIP vision models", "style_models": "style models", "gligen": "GLIGEN models",
    "photomaker": "PhotoMaker models", "vae_approx": "preview decoders", "vae-approx": "preview decoders",
    "gfpgan": "face restoration models", "codeformer": "face restoration models",
    "facerestore_models": "face restoration models", "ldsr": "LDSR upscalers", "deepbooru": "tagger models",
    "blip": "captioning models", "karlo": "unCLIP models",
}

# Category keys of ComfyUI's extra_model_paths.yaml -> role. Other keys (embeddings, configs...) are ignored.
CONFIG_ROLES = {
    "checkpoints": MODELS, "diffusion_models": MODELS, "unet": MODELS,
    "clip": TEXT_ENCODERS, "text_encoders": TEXT_ENCODERS,
    "vae": VAE, "loras": LORAS, "upscale_models": UPSCALERS, "controlnet": CONTROLNET,
}

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MODEL_FILE_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES + (".gguf",)


def role_of_folder(name: str) -> str | None:
    return FOLDER_ROLES.get(name.lower())


def is_a1111_models_dir(root: Path) -> bool:
    try:
        return (root / "Stable-diffusion").is_dir()
    except OSError:
        return False


def folder_for(root: Path, role: str) -> Path:
    """The folder of `root` where files of `role` belong: an existing one, else the layout's usual name."""
    try:
        children = {c.name.lower(): c for c in root.iterdir() if c.is_dir()}
    except OSError:
        children = {}
    for name, folder_role in FOLDER_ROLES.items():  # modern names first
        if folder_role == role and name in children:
            return children[name]
    a1111 = {MODELS: "Stable-diffusion", TEXT_ENCODERS: "text_encoder", VAE: "VAE", LORAS: "Lora", UPSCALERS: "ESRGAN",
             CONTROLNET: "ControlNet"}
    comfy = {MODELS: "diffusion_models", TEXT_ENCODERS: "text_encoders", VAE: "vae", LORAS: "loras",
             UPSCALERS: "upscale_models", CONTROLNET: "controlnet"}
    return root / (a1111 if is_a1111_models_dir(root) else comfy)[role]
