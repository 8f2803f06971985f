"""Who may change this install from the UI (install, update, remove, enable or disable extensions, read
an extension index): anyone on this machine, nobody else unless the user says so with
--enable-insecure-extension-access (A1111's rule: an extension is code that runs here)."""

from __future__ import annotations

from dataclasses import dataclass

from app.extensions.meta import ExtensionError

INSECURE_FLAG = "--enable-insecure-extension-access"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ChangeGate:
    allow_changes: bool = True
    reason: str = ""

    def check(self, action: str) -> None:
        """Raise ExtensionError("cannot <action> extensions: <reason>") when changes are turned off."""
        if not self.allow_changes:
            raise ExtensionError(f"cannot {action} extensions: {self.reason}")


LOCAL = ChangeGate(True, "")


def gate_for_server(host: str, share: bool, insecure_access: bool) -> ChangeGate:
    """The gate for a UI served on `host` (and a public link when `share`)."""
    exposed = share or host not in LOOPBACK_HOSTS
    if not exposed or insecure_access:
        return LOCAL
    how = "--share" if share else f"--listen (host {host})"
    return ChangeGate(False, f"the UI is reachable from other machines ({how}), so changes to this install from "
                             f"the UI are turned off. Restart with {INSECURE_FLAG} to allow them, or make them "
                             "on this machine (`python -m app ext`).")
