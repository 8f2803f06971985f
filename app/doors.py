"""Who may come in: the web UI's login and the API's, decided together.

A login set on either door closes both (the API takes the UI's credentials and the other way round):
a UI behind a password with an open `/sdapi/v1/txt2img` and `POST /options` beside it is a door left
open by mistake. Leaving one open takes an explicit flag (`--api-without-auth`, `--ui-without-auth`),
and the start-up line says which doors are open.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.extensions.gate import LOOPBACK_HOSTS



@dataclass(frozen=True)
class Doors:
    ui: bool  # the web UI is served
    api: bool  # /sdapi/v1 is served
    ui_auth: list[tuple[str, str]] = field(default_factory=list)  # empty: open
    api_auth: dict[str, str] = field(default_factory=dict)  # empty: open
    reachable: bool = False  # --listen, --share or a non-loopback host

    def describe(self, url: str) -> str:
        """One line for the log: where each door is and whether it asks for a login."""
        base = url.rstrip("/")
        where = "reachable from other machines" if self.reachable else "this machine only"
        parts = []
        if self.ui:
            parts.append(f"web UI {base}/ ({_lock(self.ui_auth)})")
        if self.api:
            parts.append(f"API {base}/sdapi/v1 ({_lock(self.api_auth)}; docs at {base}/docs)")
        return f"Doors ({where}): " + " · ".join(parts)


def _lock(credentials) -> str:
    return "login required" if credentials else "open, no login"


def resolve_doors(*, ui: bool, api: bool, ui_auth: list[tuple[str, str]], api_auth: dict[str, str],
                  host: str, share: bool = False, api_without_auth: bool = False,
                  ui_without_auth: bool = False) -> Doors:
    """The logins each served door asks for. `api_without_auth` / `ui_without_auth` only stop the
    other door's login from being copied onto that door."""
    ui_auth, api_auth = list(ui_auth), dict(api_auth)
    if ui and api:
        if ui_auth and not api_auth and not api_without_auth:
            api_auth = dict(ui_auth)
        if api_auth and not ui_auth and not ui_without_auth:
            ui_auth = list(api_auth.items())
    elif api and not ui and ui_auth and not api_auth:  # --nowebui --gradio-auth: that login guards the API
        api_auth = dict(ui_auth)
    return Doors(ui=ui, api=api, ui_auth=ui_auth if ui else [], api_auth=api_auth if api else {},
                 reachable=share or host not in LOOPBACK_HOSTS)
