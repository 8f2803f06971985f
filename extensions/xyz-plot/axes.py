"""Axis types and A1111's value syntax: "1-5", "1-9 (+2)", "1-2 [5]", "1,2,3", "a, b, \"c, d\""."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Any, Callable

_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?)\s*-\s*([+-]?\d+(?:\.\d*)?)"
                    r"(?:\s*\(\s*([+-]?\d+(?:\.\d*)?)\s*\)|\s*\[\s*(\d+)\s*\])?\s*$")


@dataclass(frozen=True)
class AxisType:
    label: str
    parse: Callable[[str], Any]
    apply: Callable[[Any, Any], Any]  # (request, value) -> request
    format: Callable[[Any], str] = str


@dataclass(frozen=True)
class Axis:
    kind: str
    values: tuple

    @classmethod
    def parse(cls, kind: str, text: str) -> "Axis":
        """`kind` is an AXIS_TYPES key; ValueError naming the axis when a value does not parse."""
        if kind not in AXIS_TYPES:
            raise ValueError(f"unknown axis {kind!r} (known: {', '.join(AXIS_TYPES)})")
        values = parse_values(text, AXIS_TYPES[kind].parse)
        if not values:
            raise ValueError(f"{kind}: no values")
        return cls(kind, tuple(values))

    def labels(self) -> list[str]:
        t = AXIS_TYPES[self.kind]
        return [f"{t.label}: {t.format(v)}" for v in self.values]

    def apply(self, request, value):
        return AXIS_TYPES[self.kind].apply(request, value)


def parse_values(text: str, cast: Callable[[str], Any]) -> list[Any]:
    if cast in (int, float):
        return _numbers(text, cast)
    return [cast(v.strip()) for row in csv.reader([text], skipinitialspace=True) for v in row if v.strip()]


def _numbers(text: str, cast) -> list:
    out: list = []
    for chunk in (c for c in text.split(",") if c.strip()):
        m = _RANGE.match(chunk)
        if not m:
            try:
                out.append(cast(chunk.strip()))
            except ValueError:
                raise ValueError(f"{chunk.strip()!r} is not a number or a range like 1-5") from None
            continue
        start, end, step, count = m.groups()
        a, b = cast(start), cast(end)
        if count:
            n = int(count)
            values = [a + (b - a) * i / max(1, n - 1) for i in range(n)]
            out.extend(cast(round(v, 6)) if cast is float else int(round(v)) for v in values)
        else:
            s = cast(step) if step else cast(1)
            if s == 0 or (b - a) * s < 0:
                raise ValueError(f"{chunk.strip()!r}: the step never reaches the end")
            v = a
            while (v <= b + 1e-9) if s > 0 else (v >= b - 1e-9):
                out.append(round(v, 6) if cast is float else v)
                v += s
    return out


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def _prompt_sr(request, value):
    """Prompt S/R: the first value is the search text; each value replaces it in both prompts."""
    search = value[0]
    return request.model_copy(update={"prompt": request.prompt.replace(search, value[1]),
                                      "negative_prompt": request.negative_prompt.replace(search, value[1])})


AXIS_TYPES: dict[str, AxisType] = {
    "Seed": AxisType("Seed", int, lambda r, v: r.model_copy(update={"seed": v})),
    "Steps": AxisType("Steps", int, lambda r, v: r.model_copy(update={"steps": v})),
    "CFG scale": AxisType("CFG", float, lambda r, v: r.model_copy(update={"cfg_scale": v})),
    "Guidance": AxisType("Guidance", float, lambda r, v: r.model_copy(update={"guidance": v})),
    "Prompt S/R": AxisType("Prompt", str, _prompt_sr, lambda v: v[1]),
    "Model": AxisType("Model", str, lambda r, v: r.model_copy(update={"model": v})),
    "Size": AxisType("Size", _size, lambda r, v: r.model_copy(update={"width": v[0], "height": v[1]}),
                     lambda v: f"{v[0]}x{v[1]}"),
}


def prompt_sr_axis(text: str) -> Axis:
    """Prompt S/R values become (search, replacement) pairs; the first is also the unchanged prompt."""
    words = parse_values(text, str)
    if not words:
        raise ValueError("Prompt S/R: no values")
    return Axis("Prompt S/R", tuple((words[0], w) for w in words))


def make_axis(kind: str, text: str) -> Axis:
    return prompt_sr_axis(text) if kind == "Prompt S/R" else Axis.parse(kind, text)
