"""An extension index in A1111's index.json format, read only when the user asks for it:

    {"extensions": [{"name": "...", "url": "https://github.com/...", "description": "...", "tags": ["..."]}]}

Only http(s) URLs are fetched, and from the UI only the configured indexes: a URL typed into a page
that others can reach must not make this machine read its own files (file://) or call hosts on its
network. The opener has no file, ftp or data handler, and a redirect may lead only to http(s).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlparse

from app.extensions.meta import ExtensionError

A1111_INDEX_URL = "https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json"
INDEX_URLS = (A1111_INDEX_URL,)  # the indexes the UI may read
WEB_SCHEMES = ("https", "http")
MAX_INDEX_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 30


@dataclass(frozen=True)
class IndexEntry:
    name: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()


def check_index_url(url: str, allowed: Collection[str] | None = INDEX_URLS) -> str:
    """`url` (stripped) when it may be read: an http(s) URL with a host and, unless `allowed` is None,
    one of `allowed`. Otherwise ExtensionError naming what is allowed; nothing is read."""
    url = (url or "").strip()
    parsed = urlparse(url)
    choices = f"; allowed: {', '.join(allowed)}" if allowed else ""
    if parsed.scheme.lower() not in WEB_SCHEMES or not parsed.netloc:
        raise ExtensionError(f"{url!r} is not an index URL: only http:// and https:// URLs are read"
                             f" (no file:// URLs or paths){choices}")
    if allowed is not None and url not in allowed:
        raise ExtensionError(f"{url!r} is not a configured extension index{choices}")
    return url


def load_index(url: str, *, allowed: Collection[str] | None = INDEX_URLS) -> list[IndexEntry]:
    """Entries of the index at `url` (see check_index_url; `allowed=None` takes any http(s) URL, for the
    command line); ExtensionError saying what is wrong."""
    url = check_index_url(url, allowed)
    try:
        with _opener().open(url, timeout=TIMEOUT_S) as response:
            raw = response.read(MAX_INDEX_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise ExtensionError(f"cannot read the index {url}: {exc}") from None
    return parse_index(raw, url)


def parse_index(raw: bytes, url: str = "the index") -> list[IndexEntry]:
    """The entries of an index.json; entries without a URL are skipped, the others kept."""
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


class _WebRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only (urllib's own handler also follows ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlparse(newurl).scheme.lower() not in WEB_SCHEMES:
            raise ExtensionError(f"the index {req.full_url} redirects to {newurl!r}; only http(s) is followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    """An opener that speaks http and https only (build_opener would add file, ftp and data)."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    _WebRedirects(), urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener
