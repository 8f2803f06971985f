"""What Easel does with each A1111 option, and which values each one takes.

Every option in A1111_DEFAULTS is one of:
- used: Easel applies it (USED);
- read-only: Easel serves its own value and never changes it through the API (READ_ONLY): the output
  folders and files, flags such as the number of loaded models, facts such as the PNG format;
- kept: stored in the settings file and served back on GET, with no effect on Easel (all others).
A key that is no A1111 option is unknown: accepted, reported, not stored (A1111 has nowhere to put it
either), so a client that posts back a whole GET from another UI still gets a 200.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from app.api.a1111_options import A1111_DEFAULTS
from app.errors import InvalidRequest
from app.extensions.state import read_disabled
from app.generation.request import MAX_STEPS
from app.settings import Settings

MAX_TEXT_CHARS = 4096
MAX_LIST_ITEMS = 256

USED = {
    "sd_model_checkpoint": "the model API requests use when they name none (a title from /sdapi/v1/sd-models; "
                           "null: Easel's default model); it loads with the next job",
    "show_progress_every_n_steps": f"how often API jobs decode a live preview for /progress (-1 or 0: never, "
                                   f"up to {MAX_STEPS})",
    "live_previews_enable": "false: API jobs decode no live previews",
}


def _outdir(task: str) -> Callable[[Settings], str]:
    return lambda s: str(s.outputs_dir / f"{task}-images")


# Easel's own value for each read-only option; None: A1111's default (Easel has no such thing, and the
# API must not point it anywhere: folders, files and fetching are never changed from outside).
READ_ONLY: dict[str, Callable[[Settings], Any] | None] = {
    "samples_format": lambda s: "png",
    "samples_filename_pattern": lambda s: s.filename_pattern,
    "save_images_add_number": lambda s: s.filename_pattern.startswith("[number]"),
    "save_to_dirs": lambda s: True,
    "directories_filename_pattern": lambda s: "[date]",
    "outdir_samples": lambda s: "",
    "outdir_txt2img_samples": _outdir("txt2img"),
    "outdir_img2img_samples": _outdir("img2img"),
    "outdir_extras_samples": _outdir("extras"),
    "outdir_grids": lambda s: "",
    "outdir_txt2img_grids": _outdir("grids"),
    "outdir_img2img_grids": _outdir("grids"),
    "outdir_save": None,
    "outdir_init_images": None,
    "temp_dir": None,
    "clean_temp_dir_at_start": None,
    "profiling_filename": None,
    "restore_config_state_file": None,
    "enable_pnginfo": lambda s: True,
    "sd_checkpoints_limit": lambda s: s.max_loaded_models,
    "sd_vae": lambda s: "Automatic",
    "CLIP_stop_at_last_layers": lambda s: 1,
    "disabled_extensions": lambda s: sorted(read_disabled(s.settings_file)),
    "disable_all_extensions": lambda s: "none",
    "api_enable_requests": lambda s: False,  # images come as base64 only; Easel fetches no URLs
    "api_forbid_local_requests": lambda s: True,
    "api_useragent": None,
    "sd_checkpoint_hash": None,  # filled in by ApiOptions from the selected model
}
KEPT = tuple(name for name in A1111_DEFAULTS if name not in USED and name not in READ_ONLY)
STORED = frozenset(USED) | frozenset(KEPT)  # what POST may write to the settings file


def read_only_values(settings: Settings) -> dict[str, Any]:
    return {name: (value(settings) if value else A1111_DEFAULTS[name]) for name, value in READ_ONLY.items()}


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), ((int, float), "number"), (str, "string"), (list, "array"),
                       (dict, "object"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT_CHARS


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= MAX_LIST_ITEMS and all(_is_text(item) for item in value)


# By the type of A1111's default (A1111 takes a float where its default is an int, as its sliders send).
_BY_DEFAULT_TYPE: dict[type, tuple[str, Callable[[Any], bool]]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a finite number", _is_number),
    float: ("a finite number", _is_number),
    str: (f"a string of at most {MAX_TEXT_CHARS} characters", _is_text),
    list: (f"a list of at most {MAX_LIST_ITEMS} strings", _is_text_list),
    type(None): (f"a string of at most {MAX_TEXT_CHARS} characters, or null", lambda v: v is None or _is_text(v)),
}


def _preview_steps(value: Any) -> bool:
    return _is_number(value) and value == int(value) and -1 <= value <= MAX_STEPS


# Options Easel uses take only what it can apply.
_EASEL_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "sd_model_checkpoint": ("a model title (see /sdapi/v1/sd-models) or null",
                            lambda v: v is None or (isinstance(v, str) and 0 < len(v) <= MAX_TEXT_CHARS)),
    "show_progress_every_n_steps": (f"a whole number of steps from -1 to {MAX_STEPS} (-1 or 0: no previews)",
                                    _preview_steps),
}


def checked(name: str, value: Any) -> Any:
    """`value` for option `name` as it is stored (whole numbers of steps as int); InvalidRequest naming
    the option and what it takes otherwise."""
    expected, ok = _EASEL_CHECKS.get(name) or _BY_DEFAULT_TYPE[type(A1111_DEFAULTS[name])]
    if not ok(value):
        shown = repr(value) if isinstance(value, (bool, int, float)) else _json_type(value)
        raise InvalidRequest(name, f"expected {expected}, got {shown}")
    if name == "show_progress_every_n_steps":
        return int(value)
    return value


def post_description() -> str:
    """The /docs text of POST /sdapi/v1/options: what Easel uses, what is read-only, what is only kept."""
    used = "\n".join(f"- `{name}`: {what}" for name, what in USED.items())
    return (
        "Set options, as A1111's settings. Every value is checked before any is applied: a value of the "
        "wrong type for an option is a 422 naming the option and what it takes, and nothing changes.\n\n"
        f"Options Easel applies (listed in `updated`):\n{used}\n\n"
        "Read-only (Easel serves its own value; a posted value is listed in `read_only` and changes "
        f"nothing; folders and files are never changed through the API): {_names(READ_ONLY)}.\n\n"
        "Every other A1111 option is kept in the settings file and comes back on GET, but Easel does not "
        f"use it (listed in `kept`): {_names(KEPT)}.\n\n"
        "A key that is no A1111 option is accepted and listed in `unknown`, and is not stored.\n\n"
        "The response: `{\"updated\": [...], \"ignored\": [...], \"kept\": [...], \"read_only\": [...], "
        "\"unknown\": [...]}`; `ignored` lists, in the order sent, every key that changed nothing in Easel."
    )


def _names(names) -> str:
    return ", ".join(f"`{name}`" for name in names)
