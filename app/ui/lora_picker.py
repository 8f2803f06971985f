"""The LoRA picker under each generation tab's prompt, as Forge's Lora tab: the LoRAs that fit the
selected model, a filter, and a click that writes `<lora:NAME:WEIGHT>` into the prompt.

As in Forge, a click adds the tag (at the LoRA's preferred weight from its .json, else 1) and the
.json's "activation text"; a LoRA already in the prompt is not added again. The trigger words (the
.json's, Easel's own, else the captions' most frequent tags) are shown on the row and after the click.
LoRAs whose family is not known are listed for every model, as Forge lists LoRAs of unknown version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import gradio as gr

from app.addons.prompt_tags import TAG
from app.catalog.lora_info import LoraInfo
from app.errors import EaselError
from app.ui.context import UIContext

HEADERS = ["Preview", "LoRA", "Trigger words", "Base model"]
NAME_COLUMN = 1
ROWS_PER_PAGE = 8
FAMILY_LABELS = {"flux": "FLUX.1", "sd3": "SD3.5", "sdxl": "SDXL", "sd1": "SD 1.x/2.x"}


@dataclass
class LoraPicker:
    search: gr.Textbox
    refresh: gr.Button
    table: gr.Dataset
    note: gr.Markdown  # how many fit, or what the last click did


def build_lora_picker(prefix: str) -> LoraPicker:
    """The accordion and its parts; `wire_lora_picker` connects them once the prompt exists."""
    with gr.Accordion("LoRA", open=False, elem_id=f"{prefix}_lora"):
        with gr.Row(equal_height=True):
            search = gr.Textbox(show_label=False, placeholder="Filter: name, trigger word or base model",
                                scale=5, elem_id=f"{prefix}_lora_search")
            refresh = gr.Button("Refresh", size="sm", scale=0, min_width=80, elem_id=f"{prefix}_lora_refresh")
        table = gr.Dataset(components=[gr.Image(type="filepath", render=False),
                                       *(gr.Textbox(render=False) for _ in HEADERS[1:])],
                           headers=HEADERS, samples=[], layout="table", type="values",
                           samples_per_page=ROWS_PER_PAGE, show_label=False, elem_id=f"{prefix}_lora_list")
        note = gr.Markdown(elem_id=f"{prefix}_lora_note")
    return LoraPicker(search, refresh, table, note)


def wire_lora_picker(picker: LoraPicker, context: UIContext, prompt: gr.Textbox, model: gr.Dropdown) -> None:
    """List again when the model, the filter or the folder changes; a click puts the LoRA in `prompt`."""
    handlers = LoraPickerHandlers(context)
    outputs = [picker.table, picker.note]
    model.change(handlers.listing, inputs=[model, picker.search], outputs=outputs, show_progress="hidden",
                 api_visibility="private")
    picker.search.input(handlers.listing, inputs=[model, picker.search], outputs=outputs, show_progress="hidden",
                        api_visibility="private")
    picker.refresh.click(handlers.refreshed, inputs=[model, picker.search], outputs=outputs, api_visibility="private")
    picker.table.click(handlers.choose, inputs=[picker.table, prompt], outputs=[prompt, picker.note],
                       show_progress="hidden", api_visibility="private")


class LoraPickerHandlers:
    """The picker's event handlers over one UI's engine, with the LoRA details cached per file."""

    def __init__(self, context: UIContext):
        self.context = context

    def all_loras(self, refresh: bool = False) -> list[LoraInfo]:
        try:
            return self.context.engine.loras(refresh)
        except EaselError:  # the models folder cannot be read: nothing to pick
            return []

    def listing(self, model_name: str | None, text: str | None, refresh: bool = False):
        everything = self.all_loras(refresh)
        family = lora_family_of(self.context, model_name)
        shown = filter_loras(everything, family, text)
        return gr.Dataset(samples=table_rows(shown)), listing_note(shown, everything, family, model_name, text)

    def refreshed(self, model_name: str | None, text: str | None):
        return self.listing(model_name, text, refresh=True)

    def choose(self, sample: Sequence | None, prompt: str | None):
        """The prompt with the chosen LoRA added, and a note with its trigger words."""
        name = sample[NAME_COLUMN] if sample else None
        info = next((i for i in self.all_loras() if i.name == name), None)
        if info is None:
            return gr.update(), f"⚠️ LoRA {name!r} is no longer in the loras folders: press Refresh."
        new_prompt, added = insert_lora(prompt or "", info)
        return new_prompt, chosen_note(info, added)


def lora_family_of(context: UIContext, model_name: str | None) -> str | None:
    """The family whose LoRAs fit the model (its variant's capabilities say), None when no model."""
    from app.families import family_for

    try:
        entry = context.engine.resolve_model(model_name)
        return family_for(entry.family).capabilities_for(entry.variant).lora_family or None
    except (EaselError, ValueError):
        return None


def fits(info: LoraInfo, lora_family: str | None) -> bool:
    return lora_family is None or info.family is None or info.family == lora_family


def matches(info: LoraInfo, text: str | None) -> bool:
    """Every word of `text` is in the LoRA's name, alias, trigger words, base model or description."""
    haystack = " ".join([info.name, info.alias, *info.trigger_words, info.base_model, info.description]).lower()
    return all(word in haystack for word in (text or "").lower().split())


def filter_loras(infos: Iterable[LoraInfo], lora_family: str | None, text: str | None) -> list[LoraInfo]:
    """The LoRAs that fit a model whose LoRAs are of `lora_family` (all when None) and match `text`."""
    return [i for i in infos if fits(i, lora_family) and matches(i, text)]


def table_rows(infos: Iterable[LoraInfo]) -> list[list]:
    return [[str(i.preview) if i.preview else None, i.name, ", ".join(i.trigger_words) or "—",
             i.base_model or FAMILY_LABELS.get(i.family or "", "—")] for i in infos]


def lora_tag(info: LoraInfo) -> str:
    return f"<lora:{info.name}:{info.preferred_weight or 1:g}>"


def in_prompt(prompt: str, info: LoraInfo) -> bool:
    """Whether a tag in `prompt` already names this LoRA (by name, alias or file name, any case)."""
    names = {info.name.lower(), info.alias.lower(), info.path.name.lower()}
    return any(m.group(2).split(":")[0].strip().lower() in names for m in TAG.finditer(prompt))


def insert_lora(prompt: str, info: LoraInfo) -> tuple[str, bool]:
    """`prompt` with the LoRA's tag (and activation text, when the prompt lacks it) appended after a
    space, as Forge adds it; (prompt, False) when the LoRA is already in it."""
    if in_prompt(prompt, info):
        return prompt, False
    added = lora_tag(info)
    if info.activation_text and info.activation_text.lower() not in prompt.lower():
        added += " " + info.activation_text
    if not prompt.strip():
        return added, True
    return prompt + ("" if prompt[-1].isspace() else " ") + added, True


def chosen_note(info: LoraInfo, added: bool) -> str:
    head = f"Added `{lora_tag(info)}`" if added else f"`{info.name}` is already in the prompt"
    if info.activation_text and added:
        head += f" with its activation text “{info.activation_text}”"
    words = ", ".join(info.trigger_words)
    return head + (f" · trigger words: **{words}**" if words else " · no trigger words known")


def listing_note(shown: list[LoraInfo], everything: list[LoraInfo], lora_family: str | None,
                 model_name: str | None, text: str | None) -> str:
    if not everything:
        return "No LoRA found: put .safetensors LoRA files in models/loras (or models/Lora) and press Refresh."
    hidden = sum(1 for i in everything if not fits(i, lora_family))
    for_model = f" for {model_name} ({FAMILY_LABELS.get(lora_family, lora_family)})" if lora_family else ""
    other = f" · {hidden} for other models hidden" if hidden else ""
    if not shown:
        reason = f"matches “{text.strip()}”" if (text or "").strip() else "fits"
        return f"No LoRA {reason}{for_model}{other}."
    return f"{len(shown)} LoRA{'s' if len(shown) != 1 else ''}{for_model}{other} · click one to add it to the prompt."
