"""The A1111 `parameters` text ("infotext") stored in every image Easel saves.

Layout, as A1111/Forge write it and civitai, sd-parsers and sd-prompt-reader read it:

    <prompt, one or more lines>
    Negative prompt: <negative prompt, one or more lines>     (only when there is one)
    Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, ..., Version: easel 0.1.0

Readers find the parameters line as A1111 does: the last line holding at least three
`key: value` pairs. Values containing `,`, `:` or a newline are JSON-quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

PARAMETERS_CHUNK = "parameters"
NEGATIVE_PREFIX = "Negative prompt:"

# A1111's own key order; keys not listed keep their given order after these, "Version" goes last.
KEY_ORDER = (
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Size",
    "Model hash",
    "Model",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Denoising strength",
    "Clip skip",
)
LAST_KEY = "Version"

# A1111's `re_param` (modules/infotext_utils.py), unchanged so both find the same pairs.
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_KEY = re.compile(r"\w[\w \-/]*[\w\-/]")
MIN_PARAMS = 3
# Lines some extensions (Dynamic Prompts) append after the parameters line.
_TRAILING_LINE_KEYS = ("Template:", "Negative Template:")


@dataclass(frozen=True)
class Infotext:
    """A prompt, a negative prompt and the generation parameters, as text.

    params maps A1111 keys ("Steps", "CFG scale", ...) to their values as text, in A1111 order.
    Every line of both prompts is stripped of surrounding whitespace (as A1111's reader does), so
    that what is written reads back identically. An Infotext the text layout cannot carry
    faithfully raises ValueError (see `_check_representable`).
    """

    prompt: str
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", _canonical_lines(self.prompt, keep_leading_blank=False))
        object.__setattr__(
            self, "negative_prompt", _canonical_lines(self.negative_prompt, keep_leading_blank=True)
        )
        object.__setattr__(self, "params", {str(k): str(v) for k, v in self.params.items()})
        _check_representable(self)

    @classmethod
    def build(
        cls,
        prompt: str,
        negative_prompt: str = "",
        values: Mapping[str, str | int | float | None] | None = None,
        **more_values: str | int | float | None,
    ) -> Infotext:
        """Infotext from generation values: None dropped, numbers as text, keys in A1111 order."""
        given = {**(values or {}), **more_values}
        as_text = {key: format_value(value) for key, value in given.items() if value is not None}
        known = [key for key in KEY_ORDER if key in as_text]
        others = [key for key in as_text if key not in KEY_ORDER and key != LAST_KEY]
        last = [LAST_KEY] if LAST_KEY in as_text else []
        params = {key: as_text[key] for key in known + others + last}
        return cls(prompt=prompt, negative_prompt=negative_prompt, params=params)


@dataclass(frozen=True)
class ImageMetadata:
    """What an image file says about how it was made.

    infotext: A1111/Forge parameters (PNG `parameters` chunk, or EXIF UserComment in JPEG/WebP).
    comfy_prompt / comfy_workflow: ComfyUI's `prompt` and `workflow` JSON chunks, parsed.
    raw: every text chunk as stored.
    """

    infotext: Infotext | None
    comfy_prompt: dict[str, Any] | None
    comfy_workflow: dict[str, Any] | None
    raw: dict[str, str]


def format_value(value: str | int | float) -> str:
    """Value as A1111 writes it: 7.0 -> "7", 3.5 -> "3.5", 0.75 -> "0.75"."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def quote(value: str) -> str:
    """A1111's `quote()`, also quoting what its reader would otherwise alter.

    A leading quote would be taken for a JSON string, and surrounding whitespace would be
    stripped; A1111's reader unquotes any value in double quotes, so quoting these is safe.
    """
    needs_quotes = (
        any(char in value for char in ",:\n")
        or value.startswith('"')
        or value[:1].isspace()
        or value[-1:].isspace()
    )
    return json.dumps(value, ensure_ascii=False) if needs_quotes else value


def unquote(value: str) -> str:
    if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        return value
    try:
        unquoted = json.loads(value)
    except ValueError:
        return value
    return unquoted if isinstance(unquoted, str) else value


def format_infotext(info: Infotext) -> str:
    lines = []
    if info.prompt:
        lines.append(info.prompt)
    if info.negative_prompt:
        lines.append(f"{NEGATIVE_PREFIX} {info.negative_prompt}".rstrip(" "))
    if info.params:
        lines.append(", ".join(f"{key}: {quote(value)}" for key, value in info.params.items()))
    return "\n".join(lines)


def parse_infotext(text: str) -> Infotext:
    """Infotext from A1111/Forge/Easel `parameters` text. Never raises: plain text is all prompt."""
    lines = text.strip().split("\n")
    params_index = _find_params_line(lines)
    params: dict[str, str] = {}
    if params_index is not None:
        params = _parse_pairs(lines[params_index])
        lines = lines[:params_index]

    prompt_lines, negative_lines = lines, []
    for index, line in enumerate(lines):
        if line.strip().startswith(NEGATIVE_PREFIX):
            first_negative = line.strip()[len(NEGATIVE_PREFIX) :]
            prompt_lines, negative_lines = lines[:index], [first_negative, *lines[index + 1 :]]
            break
    return Infotext(
        prompt="\n".join(prompt_lines), negative_prompt="\n".join(negative_lines), params=params
    )


def png_info_for(infotext_text: str) -> PngInfo:
    """PNG text chunks for a saved image: the infotext under `parameters`, as A1111 stores it."""
    info = PngInfo()
    info.add_text(PARAMETERS_CHUNK, infotext_text)
    return info


def read_image_metadata(image: Image.Image) -> ImageMetadata:
    """Generation metadata of an opened image. Never raises on odd or damaged metadata."""
    raw = _text_chunks(image)
    parameters = raw.get(PARAMETERS_CHUNK) or _exif_user_comment(image)
    infotext = parse_infotext(parameters) if parameters and parameters.strip() else None
    return ImageMetadata(
        infotext=infotext,
        comfy_prompt=_json_object(raw.get("prompt")),
        comfy_workflow=_json_object(raw.get("workflow")),
        raw=raw,
    )


def _canonical_lines(text: str, *, keep_leading_blank: bool) -> str:
    """Each line stripped, trailing blank lines dropped (and leading ones unless kept).

    The negative prompt keeps its leading blank lines: dropping them would pull its first line
    up onto the `Negative prompt:` line, where it could read as parameters.
    """
    lines = [line.strip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not keep_leading_blank:
        while lines and not lines[0]:
            lines.pop(0)
    return "\n".join(lines)


def _check_representable(info: Infotext) -> None:
    """Reject what `format_infotext` could not write so that `parse_infotext` reads it back."""
    for key in info.params:
        if not _KEY.fullmatch(key):
            raise ValueError(
                f"infotext key {key!r} cannot be written: a key has at least two characters, "
                "letters, digits, '_', '-', '/' or inner spaces"
            )
    if 0 < len(info.params) < MIN_PARAMS:
        raise ValueError(
            f"an infotext needs no parameters or at least {MIN_PARAMS} (got {len(info.params)}): "
            "readers only recognise a parameters line with three or more `key: value` pairs"
        )
    for line in info.prompt.split("\n"):
        if line.startswith(NEGATIVE_PREFIX):
            raise ValueError(
                f"a prompt line cannot start with {NEGATIVE_PREFIX!r}: readers would take it "
                "for the negative prompt"
            )
    if not info.params and _find_params_line(format_infotext(info).split("\n")) is not None:
        raise ValueError(
            "the last prompt line reads as generation parameters (three or more `key: value` "
            "pairs); readers would take it for the parameters line"
        )


def _find_params_line(lines: list[str]) -> int | None:
    """Index of the parameters line: the last line with >= 3 pairs, past any Template lines."""
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index].strip()
        if len(_parse_pairs(line)) >= MIN_PARAMS:
            return index
        if line and not line.startswith(_TRAILING_LINE_KEYS):
            return None
    return None


def _parse_pairs(line: str) -> dict[str, str]:
    """The `key: value` pairs of a line; keys that could not be written again are skipped."""
    pairs = {}
    for key, value in _PAIR.findall(line.strip()):
        key = key.strip()
        if _KEY.fullmatch(key):
            pairs[key] = unquote(value.strip())
    return pairs


def _text_chunks(image: Image.Image) -> dict[str, str]:
    chunks = {str(key): str(value) for key, value in image.info.items() if isinstance(value, str)}
    try:
        # PngImageFile.text also holds the chunks stored after the image data.
        png_text = getattr(image, "text", None)
    except (OSError, SyntaxError, ValueError, EOFError):
        png_text = None
    if isinstance(png_text, dict):
        chunks.update({str(key): str(value) for key, value in png_text.items()})
    return chunks


def _exif_user_comment(image: Image.Image) -> str | None:
    """EXIF UserComment, where A1111 stores the infotext of JPEG and WebP images."""
    try:
        exif_ifd = image.getexif().get_ifd(ExifTags.IFD.Exif)
        comment = exif_ifd.get(ExifTags.Base.UserComment)
    except Exception:  # Pillow raises many kinds of errors on damaged EXIF; none should surface.
        return None
    if isinstance(comment, str):
        return comment
    if not isinstance(comment, bytes):
        return None
    return _decode_user_comment(comment).rstrip("\x00")


def _decode_user_comment(comment: bytes) -> str:
    prefix, payload = comment[:8], comment[8:]
    if prefix == b"UNICODE\x00":
        # The EXIF standard leaves the byte order open; A1111 (piexif) writes big-endian.
        payload = payload[: len(payload) // 2 * 2]
        zeros_at_even = payload[0::2].count(0)
        zeros_at_odd = payload[1::2].count(0)
        encoding = "utf-16-le" if zeros_at_odd > zeros_at_even else "utf-16-be"
        return payload.decode(encoding, errors="replace")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return payload.decode("utf-8", errors="replace")
    return comment.decode("utf-8", errors="replace")


def _json_object(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
