"""An extension index in A1111's index.json format, read only when the user asks for it:

    {"extensions": [{"name": "...", "url": "https://github.com/...", "description": "...", "tags": ["..."]}]}
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlparse

from app.extensions.meta import ExtensionError

MAX_INDEX_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 30


@dataclass(frozen=True)
class IndexEntry:
    name: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()


def load_index(url: str) -> list[IndexEntry]:
    """Entries of the index at `url` (file://, http:// or https://); ExtensionError saying what is wrong."""
    if urlparse(url).scheme not in ("file", "http", "https"):
        raise ExtensionError(f"{url!r}: an index URL starts with https://, http:// or file://")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            raw = response.read(MAX_INDEX_BYTES + 1)
    except OSError as exc:
        raise ExtensionError(f"cannot read the index {url}: {exc}") from None
    if len(raw) > MAX_INDEX_BYTES:
        raise ExtensionError(f"the index {url} is larger than {MAX_INDEX_BYTES // 2**20} MiB")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ExtensionError(f"the index {url} is not JSON ({exc})") from None
    items = data.get("extensions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ExtensionError(f"the index {url} has no \"extensions\" list")
    entries = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue  # one bad entry does not hide the others
        tags = item.get("tags") if isinstance(item.get("tags"), list) else []
        entries.append(IndexEntry(name=str(item.get("name") or item["url"]), url=item["url"],
                                  description=str(item.get("description") or ""),
                                  tags=tuple(str(t) for t in tags)))
    return entries
