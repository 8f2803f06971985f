"""Saving generated images: A1111-style folders and names, never losing or overwriting a file.

Each image is written to a hidden temporary file in its destination folder, flushed to disk, and
only then given its final name with an operation that fails when the name is taken (a hard link,
or an exclusive create where the file system has no hard links). A crash therefore never leaves
a partial file under a final name, and concurrent savers, in threads or processes, never
overwrite each other: the loser of a race takes the next number.
"""

from __future__ import annotations

import os
import re
import string
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from PIL import Image

from app.generation.infotext import png_info_for

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

TASKS = ("txt2img", "img2img", "inpaint", "upscale", "extras", "grids", "controlnet")  # controlnet: detected maps
TOKENS = ("number", "seed", "model_name", "date", "datetime", "prompt_words")
DEFAULT_PATTERN = "[number]-[seed]"

MAX_STEM_CHARS = 120
MAX_TOKEN_CHARS = 60
PROMPT_WORDS = 8
NUMBER_DIGITS = 5

_TOKEN = re.compile(r"\[([^\[\]]*)\]")
_LEADING_NUMBER = re.compile(r"\d+")
_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f]')
_DOTS = re.compile(r"\.{2,}")
_NON_WORD = re.compile(r"[\s" + re.escape(string.punctuation) + r"]+")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{name}{i}" for name in ("COM", "LPT") for i in range(1, 10)]
)
_PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})
TEMP_PREFIX, TEMP_SUFFIX = ".saving-", ".png.tmp"  # .saving-<pid>-<random>.png.tmp
_TEMP_PID = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
UNOWNED_TEMP_AGE_S = 3600  # a temp file without a pid (older versions) is stale after this


class OutputStore:
    """Saves images under `root/<task>-images/YYYY-MM-DD/`, named by `filename_pattern`.

    Pattern tokens: [number] (00001, one past the largest leading number in the folder; only at
    the start, as A1111 places it), [seed], [model_name], [date] (YYYY-MM-DD),
    [datetime] (YYYYMMDDHHMMSS), [prompt_words] (the first words of the prompt).
    """

    def __init__(self, root: Path, filename_pattern: str = DEFAULT_PATTERN,
                 on_saved: Callable[[Path, str], None] | None = None):
        self.root = Path(root)
        self.filename_pattern = filename_pattern
        self._parts = _parse_pattern(filename_pattern)
        self._on_saved = on_saved  # told (path, infotext) once the file is complete under its name

    def folder_for(self, task: str, when: datetime) -> Path:
        if task not in TASKS:
            raise ValueError(f"unknown output task {task!r}: expected one of {', '.join(TASKS)}")
        return self.root / f"{task}-images" / when.strftime("%Y-%m-%d")

    def save(
        self,
        image: Image.Image,
        *,
        task: str,
        infotext: str,
        seed: int,
        model: str = "",
        prompt: str = "",
        when: datetime | None = None,
        suffix: str = "",
    ) -> Path:
        """Write `image` as PNG with its infotext and return the path it was saved under. `suffix` ends
        the file name's stem (A1111's "-before-highres-fix")."""
        when = when or datetime.now()
        folder = self.folder_for(task, when)
        folder.mkdir(parents=True, exist_ok=True)
        values = {
            "seed": str(seed),
            "model_name": model,
            "date": when.strftime("%Y-%m-%d"),
            "datetime": when.strftime("%Y%m%d%H%M%S"),
            "prompt_words": _first_words(prompt),
        }
        temp = _write_temporary_png(image, infotext, folder)
        try:
            with _folder_lock(folder):
                final = self._claim_name(temp, folder, values, suffix)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_directory(folder)
        if self._on_saved is not None:
            self._on_saved(final, infotext)
        return final

    def _claim_name(self, temp: Path, folder: Path, values: Mapping[str, str], suffix: str = "") -> Path:
        for name in self._candidate_names(folder, values, suffix):
            final = folder / name
            try:
                _link_exclusively(temp, final)
            except FileExistsError:
                continue
            return final
        raise AssertionError("candidate names never run out")

    def _candidate_names(self, folder: Path, values: Mapping[str, str], suffix: str = "") -> Iterator[str]:
        numbered = self._parts[:1] == [("token", "number")]
        if numbered:
            number = _next_number(folder)
            while True:
                number_text = f"{number:0{NUMBER_DIGITS}d}"
                yield f"{_render(self._parts, {**values, 'number': number_text})}{suffix}.png"
                number += 1
        stem = _render(self._parts, values) + suffix
        yield f"{stem}.png"
        counter = 1
        while True:
            yield f"{stem}-{counter}.png"
            counter += 1


def sanitize_filename_part(text: str, max_chars: int = MAX_STEM_CHARS) -> str:
    """Text safe as (part of) a file name on Linux, macOS and Windows.

    No path separators, "..", control characters or characters Windows forbids; no leading or
    trailing dots and spaces; at most `max_chars` characters.
    """
    text = _UNSAFE_CHARS.sub("_", text)
    text = _DOTS.sub(".", text)
    return text.strip(" .")[:max_chars].rstrip(" .")


def _parse_pattern(pattern: str) -> list[tuple[str, str]]:
    """("text", literal) and ("token", name) parts; ValueError for what cannot be rendered."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _TOKEN.finditer(pattern):
        token = match.group(1)
        if token not in TOKENS:
            allowed = ", ".join(f"[{name}]" for name in TOKENS)
            raise ValueError(
                f"unknown token [{token}] in filename pattern {pattern!r}; allowed tokens: {allowed}"
            )
        if token == "number" and match.start() != 0:
            raise ValueError(
                f"[number] can only start the filename pattern (as in 00001-[seed]), got {pattern!r}"
            )
        if match.start() > position:
            parts.append(("text", pattern[position : match.start()]))
        parts.append(("token", token))
        position = match.end()
    if position < len(pattern):
        parts.append(("text", pattern[position:]))
    return parts


def _render(parts: list[tuple[str, str]], values: Mapping[str, str]) -> str:
    pieces = [
        sanitize_filename_part(values[value], MAX_TOKEN_CHARS) if kind == "token" else value
        for kind, value in parts
    ]
    stem = sanitize_filename_part("".join(pieces)) or "image"
    if stem.split(".")[0].strip().upper() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return stem


def _first_words(prompt: str) -> str:
    """A1111's [prompt_words]: the first words, split on whitespace and punctuation."""
    words = [word for word in _NON_WORD.split(prompt) if word]
    return " ".join(words[:PROMPT_WORDS])


def _next_number(folder: Path) -> int:
    """One past the largest number any file name in `folder` starts with (A1111's rule)."""
    largest = 0
    for name in os.listdir(folder):
        match = _LEADING_NUMBER.match(name)
        if match:
            largest = max(largest, int(match.group()))
    return largest + 1


def _write_temporary_png(image: Image.Image, infotext: str, folder: Path) -> Path:
    """The PNG, complete and on disk, under a hidden name no reader takes for an output."""
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    descriptor, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=TEMP_SUFFIX, dir=folder)
    temp = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            image.save(file, format="PNG", pnginfo=png_info_for(infotext))
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _link_exclusively(temp: Path, final: Path) -> None:
    """Give the finished temp file the name `final`; FileExistsError when the name is taken."""
    try:
        os.link(temp, final)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links here (FAT, exFAT, some network shares): claim the name, then move
    descriptor = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(descriptor)
    os.replace(temp, final)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Serialise picking numbers among threads and processes, so that numbers stay unique.

    Where the OS has no flock, names are still never reused (the exclusive link guarantees it),
    but two concurrent saves may share a number with different seeds.
    """
    if fcntl is None:
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:
            pass  # file systems without locks: uniqueness of names still holds
        yield
    finally:
        os.close(descriptor)


def _fsync_directory(folder: Path) -> None:
    """Make the new name itself durable (POSIX); best effort where directories cannot be synced."""
    if os.name != "posix":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_stale_temporaries(root: Path) -> int:
    """Remove the half-written images a killed process left under `root` (its `.saving-<pid>-*` files
    whose process is gone); a live process's temp files are left alone. Returns how many went."""
    import time

    removed = 0
    for temp in Path(root).glob(f"*-images/*/{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        match = _TEMP_PID.match(temp.name)
        try:
            stale = (not _process_alive(int(match.group(1)))) if match else (
                time.time() - temp.stat().st_mtime > UNOWNED_TEMP_AGE_S)
            if stale:
                temp.unlink()
                removed += 1
        except OSError:  # gone already, or a read-only folder
            continue
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: not ours to judge
    return True
