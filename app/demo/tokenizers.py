"""Tokenizers for the demo models, built offline.

CLIP uses the real BPE vocabulary shipped in app/families/tokenizers/clip. No T5 SentencePiece model can
be had offline, so the demo's T5 tokenizer is a small Unigram vocabulary built in code: whole words for
the demo's caption vocabulary plus single characters, so any prompt still tokenizes.
"""

from __future__ import annotations

import string
from pathlib import Path

CLIP_TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "families" / "tokenizers" / "clip"

DEMO_WORDS = (
    "a an the on of in with and at left right top bottom center middle small large big tiny "
    "background circle square triangle star ring cross diamond shape photo picture image "
    "red green blue yellow white black orange purple pink cyan magenta gray grey brown "
    "dark light bright cat dog tree house sky sea mountain flower person car"
).split()


def build_demo_t5_tokenizer(words: tuple[str, ...] | list[str] = DEMO_WORDS):
    """A T5 (Unigram) tokenizer whose pieces are the given words and every printable character."""
    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    seen = {p for p, _ in pieces}
    for word in words:
        piece = "\u2581" + word
        if piece not in seen:
            pieces.append((piece, -1.0))
            seen.add(piece)
    for ch in "\u2581" + string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation:
        if ch not in seen:
            pieces.append((ch, -5.0))
            seen.add(ch)
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def load_clip_tokenizer(pad_token: str | None = None):
    from transformers import CLIPTokenizer

    kwargs = {"pad_token": pad_token} if pad_token else {}
    return CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR), **kwargs)
