"""A1111's extra-network prompt syntax: `<lora:NAME>`, `<lora:NAME:WEIGHT>`, `<lora:NAME:TE:UNET>`.

The tags stay in the prompt the user wrote (and in the infotext, as A1111 keeps them); the text the
encoders read has them removed. `<lyco:...>` (the LyCORIS extension's spelling) reads the same. Named
weights as A1111 accepts them (`te=0.5`, `unet=1`) work too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import InvalidRequest

TAG = re.compile(r"<(lora|lyco):([^<>]*)>", re.IGNORECASE)
_SPACES_BEFORE_PUNCT = re.compile(r"\s+([,.;])")
_REPEATED_COMMAS = re.compile(r"(,\s*){2,}")


@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float = 1.0  # the transformer's (A1111's "unet")
    text_encoder_weight: float | None = None  # None: the same as weight
    text: str = ""  # the tag as written


def find_lora_tags(prompt: str, field: str = "prompt") -> list[LoraTag]:
    """The tags in `prompt`, in order. A weight that is not a number is an InvalidRequest naming it."""
    tags = []
    for match in TAG.finditer(prompt or ""):
        parts = [p.strip() for p in match.group(2).split(":")]
        name, args = parts[0], parts[1:]
        if not name:
            raise InvalidRequest(field, f"{match.group(0)} names no LoRA: write <lora:NAME:WEIGHT>")
        named = {k.strip().lower(): v for k, _, v in (a.partition("=") for a in args if "=" in a)}
        positional = [a for a in args if "=" not in a and a]
        te = _number(named.get("te", positional[0] if positional else None), match.group(0), field)
        unet = _number(named.get("unet", positional[1] if len(positional) > 1 else None), match.group(0), field)
        weight = unet if unet is not None else (te if te is not None else 1.0)
        tags.append(LoraTag(name, weight, te if unet is not None else None, match.group(0)))
    return tags


def strip_lora_tags(prompt: str) -> str:
    """The prompt as the text encoders should read it: tags removed, the commas they leave tidied."""
    text = TAG.sub("", prompt or "")
    text = _REPEATED_COMMAS.sub(", ", text)
    text = _SPACES_BEFORE_PUNCT.sub(r"\1", text)
    lines = [" ".join(line.split()).strip(" ,") for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def _number(text: str | None, tag: str, field: str) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidRequest(field, f"{tag}: the weight {text!r} is not a number (write e.g. <lora:name:0.8>)") from None
    if not -10 <= value <= 10 or value != value:
        raise InvalidRequest(field, f"{tag}: the weight {value} is out of range: allowed -10..10")
    return value
