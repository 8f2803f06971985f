"""Build a FLUX.1 or SD3.5 pipeline's components from single .safetensors files, offline.

Each model is created from a config with empty (meta) weights and then takes the file's tensors
as its own (`load_state_dict(strict=True, assign=True)`), so a 24 GB transformer is never held
twice. The configs are the released architectures (shipped under configs/<variant>/) with every
width and count read from the tensors, so pruned and test-size files load as well.

Files in the original layouts (BFL / ComfyUI / Stability / LDM keys, with or without the
"model.diffusion_model." prefix) and in the diffusers layout are both read; an all-in-one SD3.5
checkpoint is split into its parts by key prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel, SD3Transformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from app.catalog.entry import VARIANTS, ModelEntry
from app.errors import UnreadableModel
from app.families import keys_flux, keys_sd3, keys_text_encoders, keys_vae
from app.families.safetensors_parts import (
    CONTENT_NAMES,
    PART_HELP,
    TensorSource,
    describe_contents,
    find_part,
    index_entry_files,
    missing_part_error,
)
from app.families.tokenizer_files import CLIP_G_PAD_TOKEN, load_clip_tokenizer, load_t5_tokenizer

CONFIG_DIR = Path(__file__).parent / "configs"
FAMILY_TITLES = {"flux": "FLUX.1", "sd3": "Stable Diffusion 3.5"}
# The parts each family needs; SD3.5 runs without T5 (the pipeline then feeds zeros in its place).
REQUIRED_PARTS = {"flux": ("transformer", "vae", "clip_l", "t5xxl"), "sd3": ("transformer", "vae", "clip_l", "clip_g")}
OPTIONAL_PARTS = {"flux": (), "sd3": ("t5xxl",)}
_MISMATCH_KEYS_SHOWN = 5


def released_config(variant: str, component: str) -> dict[str, Any]:
    """The released config of one pipeline component ("transformer", "vae", "text_encoder", ...)."""
    path = CONFIG_DIR / variant / f"{component}.json"
    if not path.is_file():
        raise UnreadableModel(f"No shipped config for {variant} {component} (expected {path}).")
    return json.loads(path.read_text())


def _init_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """A diffusers config without its bookkeeping keys (_class_name, _diffusers_version)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _where(source: TensorSource, part: str) -> str:
    if source.prefix:
        return f"{source.path} (its {PART_HELP[part].label} under '{source.prefix}')"
    return str(source.path)


def _not_readable(where: str, what: str, expected: str, err: Exception, source: TensorSource) -> UnreadableModel:
    """The error for a file that is not the `expected` kind of model (a CONTENT_NAMES key), saying
    what it looks like instead when that can be told from its keys."""
    reason = f"key {err.args[0]} is missing" if isinstance(err, KeyError) else str(err)
    kind = describe_contents(source.local_keys())
    looks = f"; it looks like {CONTENT_NAMES[kind]}" if kind is not None and kind != expected else ""
    return UnreadableModel(f"{where}: not a {what} Easel can read ({reason}{looks}).")


def _keys_phrase(kind: str, keys: list[str]) -> str:
    more = f" and {len(keys) - _MISMATCH_KEYS_SHOWN} more" if len(keys) > _MISMATCH_KEYS_SHOWN else ""
    return f"{kind} {'key' if len(keys) == 1 else 'keys'} {', '.join(keys[:_MISMATCH_KEYS_SHOWN])}{more}"


def _mismatch_message(where: str, label: str, missing: list[str], unexpected: list[str]) -> str:
    details = []
    if missing:
        details.append(_keys_phrase("missing", missing))
    if unexpected:
        details.append(_keys_phrase("unexpected", unexpected))
    return f"{where}: the {label} does not match the architecture read from it ({'; '.join(details)})."


def _cast_in_place(tensors: dict[str, torch.Tensor], dtype: torch.dtype, keep_in_fp32: tuple[str, ...],
                   keep_dtypes: frozenset = frozenset()) -> None:
    """Cast floating tensors one by one, replacing each in `tensors` so its old copy is freed at once;
    tensors of `keep_dtypes` stay as stored."""
    for key in list(tensors):
        tensor = tensors[key]
        if not tensor.is_floating_point() or tensor.dtype in keep_dtypes:
            continue
        wanted = torch.float32 if dtype == torch.float16 and set(key.split(".")) & set(keep_in_fp32) else dtype
        if tensor.dtype != wanted:
            tensors[key] = tensor.to(wanted)


def build_model(
    make: Callable[[], torch.nn.Module],
    tensors: dict[str, torch.Tensor],
    dtype: torch.dtype,
    *,
    where: str,
    label: str,
    keep_in_fp32: tuple[str, ...] = (),
    fit_keys: Callable[[set[str], dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    after_load: Callable[[torch.nn.Module], None] | None = None,
    empty_buffers: bool = False,
    keep_dtypes: frozenset = frozenset(),
) -> torch.nn.Module:
    """Create a model with empty weights and give it `tensors`, strictly, cast to `dtype`.

    The model takes the tensors as its own (assign=True), so nothing is copied but the cast, which
    goes one tensor at a time; `tensors` is emptied. Modules named in `keep_in_fp32` stay float32
    under float16 (T5's "wo" overflows in half precision). `fit_keys` adapts the names to the
    model's (given the model's expected keys), `after_load` finishes it (e.g. ties weights).

    `empty_buffers` creates the buffers empty as well; only for models whose buffers are all in
    the file (the diffusers ones): SD3.5 medium would otherwise compute a 384x384 position table
    (~10 s) only to overwrite it.
    """
    try:
        with init_empty_weights(include_buffers=empty_buffers):
            model = make()
    except (ValueError, TypeError, AssertionError) as err:
        raise UnreadableModel(f"{where}: the {label} has an unsupported shape ({err}).") from err
    expected = set(model.state_dict())
    if fit_keys is not None:
        tensors = fit_keys(expected, tensors)
    missing, unexpected = sorted(expected - tensors.keys()), sorted(tensors.keys() - expected)
    if missing or unexpected:
        raise UnreadableModel(_mismatch_message(where, label, missing, unexpected))
    _cast_in_place(tensors, dtype, keep_in_fp32, keep_dtypes)
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        shapes = [line.strip().rstrip(".") for line in str(err).splitlines() if "size mismatch" in line]
        raise UnreadableModel(
            f"{where}: the {label} tensors do not fit the architecture read from it "
            f"({'; '.join(shapes[:3]) or err})."
        ) from err
    tensors.clear()
    if after_load is not None:
        after_load(model)
    left_empty = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left_empty:
        raise RuntimeError(f"{label}: tensors left without data after loading: {left_empty[:3]}")
    return model.eval()


def load_transformer(family: str, variant: str, source: TensorSource, dtype: torch.dtype) -> torch.nn.Module:
    """FluxTransformer2DModel or SD3Transformer2DModel from an original- or diffusers-layout file (a GGUF
    one stays quantized: gguf_transformer.py)."""
    from app.families.gguf_transformer import GgufSource, load_gguf_transformer

    if isinstance(source, GgufSource):
        return load_gguf_transformer(family, variant, source, dtype)
    where, title = _where(source, "transformer"), FAMILY_TITLES[family]
    tensors = source.load()
    released = released_config(variant, "transformer")
    try:
        if family == "flux":
            if keys_flux.is_bfl_layout(list(tensors)):
                tensors = keys_flux.convert_bfl_to_diffusers(tensors)
            config = keys_flux.infer_config(tensors, released, source.metadata)
            model_cls: type = FluxTransformer2DModel
        else:
            if keys_sd3.is_original_layout(list(tensors)):
                tensors = keys_sd3.convert_original_to_diffusers(tensors)
            config = keys_sd3.infer_config(tensors, released, source.metadata)
            model_cls = SD3Transformer2DModel
    except (KeyError, ValueError) as err:
        raise _not_readable(where, f"{title} transformer", family, err, source) from err
    from app.families.fp8_storage import fp8_storage_dtype, keep_fp8_layers

    storage = fp8_storage_dtype(tensors)
    model = build_model(
        lambda: model_cls.from_config(_init_kwargs(config)),
        tensors,
        dtype,
        where=where,
        label=f"{title} transformer",
        empty_buffers=True,
        keep_dtypes=frozenset({storage}) if storage is not None else frozenset(),
    )
    return keep_fp8_layers(model, storage, dtype) if storage is not None else model


def load_vae(variant: str, source: TensorSource, dtype: torch.dtype) -> AutoencoderKL:
    """AutoencoderKL from an LDM/BFL- or diffusers-layout file; refuses a 4-channel (SD1/SDXL) VAE."""
    where = _where(source, "vae")
    tensors = source.load()
    try:
        channels = keys_vae.latent_channels(tensors)
        if channels != keys_vae.REQUIRED_LATENT_CHANNELS:
            raise UnreadableModel(f"{where}: {keys_vae.wrong_channels_message(channels)}.")
        if keys_vae.is_ldm_layout(list(tensors)):
            tensors = keys_vae.convert_ldm_to_diffusers(tensors)
        config = keys_vae.infer_config(tensors, released_config(variant, "vae"))
    except (KeyError, ValueError) as err:
        raise _not_readable(where, "VAE", "vae", err, source) from err
    return build_model(
        lambda: AutoencoderKL.from_config(_init_kwargs(config)),
        tensors,
        dtype,
        where=where,
        label="VAE",
        empty_buffers=True,
    )


def load_clip(
    source: TensorSource, part: str, released: Mapping[str, Any], dtype: torch.dtype, *, with_projection: bool
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """CLIPTextModel (FLUX) or CLIPTextModelWithProjection (SD3) from a transformers-layout file."""
    where, label = _where(source, part), PART_HELP[part].label
    tensors = keys_text_encoders.tidy_clip(source.load(), with_projection=with_projection)
    try:
        config = CLIPTextConfig.from_dict(keys_text_encoders.infer_clip_config(tensors, released, source.metadata))
    except (KeyError, ValueError) as err:
        raise _not_readable(where, label, "clip", err, source) from err
    model_cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return build_model(
        lambda: model_cls(config),
        tensors,
        dtype,
        where=where,
        label=label,
        fit_keys=keys_text_encoders.fit_clip_prefix,
    )


def load_t5(source: TensorSource, released: Mapping[str, Any], dtype: torch.dtype) -> T5EncoderModel:
    """T5EncoderModel from a ComfyUI/transformers-layout file; under float16 "wo" stays float32."""
    where, label = _where(source, "t5xxl"), PART_HELP["t5xxl"].label
    try:
        tensors = keys_text_encoders.tidy_t5(source.load())
        config = T5Config.from_dict(keys_text_encoders.infer_t5_config(tensors, released))
    except (KeyError, ValueError) as err:
        raise _not_readable(where, label, "t5", err, source) from err
    keep = tuple(T5EncoderModel._keep_in_fp32_modules or ())
    from app.families.fp8_storage import fp8_storage_dtype, keep_fp8_layers

    storage = fp8_storage_dtype(tensors)  # t5xxl_fp8_e4m3fn stays fp8, computing in `dtype`
    model = build_model(
        lambda: T5EncoderModel(config),
        tensors,
        dtype,
        where=where,
        label=label,
        keep_in_fp32=keep,
        after_load=lambda model: model.tie_weights(),  # one embedding under its two names
        keep_dtypes=frozenset({storage}) if storage is not None else frozenset(),
    )
    return keep_fp8_layers(model, storage, dtype, fp32_modules=keep) if storage is not None else model


def _guess_variant(family: str, transformer: TensorSource) -> str:
    """For entries the catalog could not name: guidance input -> dev; dual attention -> medium."""
    keys = transformer.local_keys()
    if family == "flux":
        return "flux-dev" if any("guidance" in k for k in keys) else "flux-schnell"
    return "sd3.5-medium" if any(".attn2." in k for k in keys) else "sd3.5-large"


def resolve_parts(entry: ModelEntry, models_root: Path) -> dict[str, TensorSource | None]:
    """Where each part of `entry` is (reading headers only); optional parts absent map to None.

    Raises MissingModelFiles naming the first part that is nowhere to be found.
    """
    family = entry.family or ""
    if family not in REQUIRED_PARTS:
        raise UnreadableModel(
            f"{entry.path}: unknown model family {entry.family!r}; single files load for FLUX.1 and SD3.5."
        )
    from app.families.gguf_transformer import gguf_source, is_gguf

    quantized = {role: Path(p) for role, p in entry.parts.items() if is_gguf(Path(p))}
    indexes = index_entry_files({r: p for r, p in entry.parts.items() if r not in quantized}, models_root)
    sources: dict[str, Any] = {}
    for part in REQUIRED_PARTS[family] + OPTIONAL_PARTS[family]:
        if part in quantized:  # a GGUF file holds one part alone (the transformer, or T5)
            sources[part] = gguf_source(quantized[part])
            continue
        source = find_part(part, indexes)
        if source is None and part in REQUIRED_PARTS[family]:
            raise missing_part_error(part, family, FAMILY_TITLES[family], models_root, Path(entry.path))
        sources[part] = source
    return sources


def load_single_file_components(
    entry: ModelEntry, dtype: torch.dtype, *, models_root: Path, hf_cache: Path | None = None
) -> dict[str, Any]:
    """The keyword components of the family's diffusers pipeline, built from `entry`'s files.

    FLUX: transformer, vae, text_encoder (CLIP-L), tokenizer, text_encoder_2 (T5), tokenizer_2,
    scheduler. SD3.5: transformer, vae, text_encoder (CLIP-L), tokenizer, text_encoder_2 (CLIP-G),
    tokenizer_2, text_encoder_3 / tokenizer_3 (T5, None when no T5 file is there), scheduler.

    Every file and the T5 tokenizer are found before any weight is read, so a missing part fails
    at once (MissingModelFiles). A file that cannot be read or does not match: UnreadableModel.
    `hf_cache` is where to look for a T5 tokenizer download (default: huggingface_hub's cache).
    """
    sources = resolve_parts(entry, Path(models_root))
    family = entry.family or ""
    transformer_source = sources["transformer"]
    assert transformer_source is not None  # a required part
    variant = entry.variant or _guess_variant(family, transformer_source)
    if variant not in VARIANTS[family]:
        raise UnreadableModel(f"{entry.path}: unknown {FAMILY_TITLES[family]} variant {variant!r}.")
    t5_source = sources.get("t5xxl")
    t5_tokenizer = load_t5_tokenizer(Path(models_root), hf_cache) if t5_source is not None else None

    def part(name: str) -> TensorSource:
        source = sources[name]
        assert source is not None  # required parts were checked by resolve_parts
        return source

    components: dict[str, Any] = {
        "transformer": load_transformer(family, variant, transformer_source, dtype),
        "vae": load_vae(variant, part("vae"), dtype),
        "scheduler": FlowMatchEulerDiscreteScheduler.from_config(
            _init_kwargs(released_config(variant, "scheduler"))
        ),
    }
    if family == "flux":
        components["text_encoder"] = load_clip(
            part("clip_l"), "clip_l", released_config(variant, "text_encoder"), dtype, with_projection=False
        )
        components["tokenizer"] = load_clip_tokenizer()
        components["text_encoder_2"] = load_t5(part("t5xxl"), released_config(variant, "text_encoder_2"), dtype)
        components["tokenizer_2"] = t5_tokenizer
        return components
    components["text_encoder"] = load_clip(
        part("clip_l"), "clip_l", released_config(variant, "text_encoder"), dtype, with_projection=True
    )
    components["tokenizer"] = load_clip_tokenizer()
    components["text_encoder_2"] = load_clip(
        part("clip_g"), "clip_g", released_config(variant, "text_encoder_2"), dtype, with_projection=True
    )
    components["tokenizer_2"] = load_clip_tokenizer(pad_token=CLIP_G_PAD_TOKEN)
    components["text_encoder_3"] = (
        load_t5(t5_source, released_config(variant, "text_encoder_3"), dtype) if t5_source is not None else None
    )
    components["tokenizer_3"] = t5_tokenizer
    return components
