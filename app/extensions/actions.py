"""What the Extensions tab may do to this install, every action through the same gate.

Each action returns the text for the tab's output box or raises ExtensionError with what went wrong;
the tab only lays out buttons and shows these texts. When others can reach the UI, the gate refuses
all of them before anything is read or written (see gate.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.extensions import install as installer
from app.extensions.gate import ChangeGate
from app.extensions.index import INDEX_URLS, IndexEntry, load_index
from app.extensions.manager import ExtensionManager

RESTART_NOTE = "Restart Easel to apply changes to extensions."


@dataclass(frozen=True)
class ExtensionActions:
    manager: ExtensionManager
    gate: ChangeGate
    index_urls: tuple[str, ...] = INDEX_URLS

    def set_enabled(self, name: str, enabled: bool) -> str:
        self.gate.check("enable" if enabled else "disable")
        self.manager.set_enabled(name or "", enabled)
        return f"{name} {'enabled' if enabled else 'disabled'}. {RESTART_NOTE}"

    def install(self, source: str) -> str:
        return f"{installer.install(source or '', self.manager.extensions_dir, self.gate).text}\n{RESTART_NOTE}"

    def update(self, name: str) -> str:
        return f"{installer.update(name or '', self.manager.extensions_dir, self.gate).text}\n{RESTART_NOTE}"

    def remove(self, name: str) -> str:
        return f"removed {installer.remove(name or '', self.manager.extensions_dir, self.gate)}. {RESTART_NOTE}"

    def load_index(self, url: str) -> list[IndexEntry]:
        """The entries of one of the configured indexes (never another URL, a file:// URL or a path)."""
        self.gate.check("list available")
        return load_index(url or "", allowed=self.index_urls)
