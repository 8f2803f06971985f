"""Tokenizers for single-file models, found offline.

The CLIP BPE files ship with Easel. A T5 tokenizer cannot be shipped, so it is looked for where a
user is likely to have one already: a folder under the models root, or a FLUX.1 / SD3.5 / T5
download in the Hugging Face cache.
"""

from __future__ import annotations

from pathlib import Path

from transformers import CLIPTokenizer, T5Tokenizer

from app.errors import MissingModelFiles, UnreadableModel

CLIP_TOKENIZER_DIR = Path(__file__).parent / "tokenizers" / "clip"
CLIP_MAX_LENGTH = 77
# SD3's second CLIP tokenizer (for CLIP-G) pads with "!" (id 0) instead of "<|endoftext|>".
CLIP_G_PAD_TOKEN = "!"
T5_MAX_LENGTH = 512

# Folders under the models root, in the order they are tried.
T5_TOKENIZER_FOLDERS = ("text_encoders/t5-tokenizer", "tokenizers/t5")
# Hugging Face cache repositories and the subfolder holding a T5-XXL tokenizer in each.
T5_TOKENIZER_REPOS = (
    ("models--google--t5-v1_1-xxl", ""),
    ("models--black-forest-labs--FLUX.1-dev", "tokenizer_2"),
    ("models--black-forest-labs--FLUX.1-schnell", "tokenizer_2"),
    ("models--stabilityai--stable-diffusion-3.5-large", "tokenizer_3"),
    ("models--stabilityai--stable-diffusion-3.5-large-turbo", "tokenizer_3"),
    ("models--stabilityai--stable-diffusion-3.5-medium", "tokenizer_3"),
)
_T5_VOCAB_FILES = ("spiece.model", "tokenizer.json")


def load_clip_tokenizer(pad_token: str | None = None) -> CLIPTokenizer:
    """The shipped CLIP tokenizer; pass CLIP_G_PAD_TOKEN for SD3's second tokenizer."""
    extra = {"pad_token": pad_token} if pad_token is not None else {}
    return CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR), model_max_length=CLIP_MAX_LENGTH, **extra)


def hub_cache_dir(hf_cache: Path | None) -> Path:
    """The folder holding models--* repositories: `hf_cache` (or its hub/ subfolder when given
    HF_HOME), else the cache huggingface_hub itself uses (HF_HUB_CACHE / HF_HOME)."""
    if hf_cache is None:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    hf_cache = Path(hf_cache)
    return hf_cache / "hub" if (hf_cache / "hub").is_dir() else hf_cache


def t5_tokenizer_candidates(models_root: Path, hf_cache: Path | None = None) -> list[Path]:
    """Every folder that is looked in for a T5 tokenizer, in order (existing or not)."""
    folders = [Path(models_root) / sub for sub in T5_TOKENIZER_FOLDERS]
    hub = hub_cache_dir(hf_cache)
    for repo, sub in T5_TOKENIZER_REPOS:
        snapshots = sorted((hub / repo / "snapshots").glob("*"))
        folders.extend(snapshot / sub if sub else snapshot for snapshot in snapshots)
    return folders


def has_t5_vocab(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _T5_VOCAB_FILES)


def find_t5_tokenizer(models_root: Path, hf_cache: Path | None = None) -> Path | None:
    """The first folder with a T5 vocabulary (spiece.model or tokenizer.json), or None."""
    return next((f for f in t5_tokenizer_candidates(models_root, hf_cache) if has_t5_vocab(f)), None)


def missing_t5_tokenizer_error(models_root: Path, hf_cache: Path | None = None) -> MissingModelFiles:
    local = [str(Path(models_root) / sub) + "/" for sub in T5_TOKENIZER_FOLDERS]
    hub = hub_cache_dir(hf_cache)
    cached = ", ".join(f"{repo}{'/snapshots/*/' + sub if sub else ''}" for repo, sub in T5_TOKENIZER_REPOS)
    return MissingModelFiles(
        "No T5 tokenizer found; the T5-XXL text encoder cannot be used without one. Put spiece.model "
        f"(or tokenizer.json) and tokenizer_config.json in {local[0]} (or {local[1]}), for example "
        "copied from the tokenizer_2 folder of black-forest-labs/FLUX.1-schnell or from "
        f"google/t5-v1_1-xxl. Also looked in the Hugging Face cache {hub}: {cached}."
    )


def load_t5_tokenizer(models_root: Path, hf_cache: Path | None = None) -> T5Tokenizer:
    folder = find_t5_tokenizer(models_root, hf_cache)
    if folder is None:
        raise missing_t5_tokenizer_error(models_root, hf_cache)
    try:
        tokenizer = T5Tokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError, RuntimeError) as err:
        raise UnreadableModel(f"{folder}: the T5 tokenizer files cannot be read ({err}).") from err
    if tokenizer.model_max_length > 10**6:  # no tokenizer_config.json: transformers' "unlimited"
        tokenizer.model_max_length = T5_MAX_LENGTH
    return tokenizer
