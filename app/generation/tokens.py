"""CLIP's 77-token window: how many tokens a prompt takes, shared by the engine and the UI counter."""

from __future__ import annotations

CLIP_WINDOW = 75  # tokens between CLIP's start and end markers (77 in all)


def count_clip_tokens(tokenizer, prompt: str) -> int:
    """Tokens the prompt takes in CLIP's window, without the start/end markers."""
    if tokenizer is None or not prompt:
        return 0
    return len(tokenizer(prompt, truncation=False, add_special_tokens=False)["input_ids"])
