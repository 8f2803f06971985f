"""ExtensionManager: finds, loads and calls extensions, keeping each one's failures to itself.

Hook calls do not go through pluggy's `hook.x(...)` (one raising implementation would stop the others
and reach the caller): `call` iterates `hook.get_hookimpls()` and calls each `impl.function` with the
arguments it names. A raising implementation is recorded on its extension, logged, and the extension
is unregistered, so its hooks are skipped until the next start; the caller always goes on.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pluggy

from app import __version__
from app.errors import EaselError
from app.extensions import hookspecs
from app.extensions.loader import import_folder
from app.extensions.meta import ExtensionError, ExtensionMeta, check_name, read_meta
from app.extensions.state import read_disabled, set_disabled
from app.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

EXTENSIONS_DIR = PROJECT_ROOT / "extensions"
ENTRY_POINT_GROUP = "easel"
LOADED, DISABLED, FAILED = "loaded", "disabled", "failed"


class HookAborted(EaselError):
    """An extension's hook raised SystemExit or the like: the job that called it fails, naming it."""


@dataclass
class ExtensionRecord:
    """One extension as the Extensions tab lists it."""

    name: str
    meta: ExtensionMeta
    path: Path | None  # None for a package found by entry point
    status: str = DISABLED
    errors: list[str] = field(default_factory=list)
    module: Any = None

    @property
    def enabled(self) -> bool:
        return self.status != DISABLED

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "package (entry point)"


class ExtensionManager:
    def __init__(self, extensions_dir: Path = EXTENSIONS_DIR, settings_file: Path | None = None, *,
                 easel_version: str = __version__, entry_points: bool = True):
        self.extensions_dir = Path(extensions_dir)
        self.settings_file = Path(settings_file) if settings_file else PROJECT_ROOT / "settings.json"
        self.easel_version = easel_version
        self.entry_points = entry_points
        self.records: dict[str, ExtensionRecord] = {}
        self._lock = threading.Lock()
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)

    @classmethod
    def from_settings(cls, settings, extensions_dir: Path = EXTENSIONS_DIR) -> "ExtensionManager":
        manager = cls(extensions_dir, settings.settings_file)
        manager.load()
        return manager

    # -- loading -------------------------------------------------------------------------------------
    def load(self) -> "ExtensionManager":
        """Load every enabled extension: folders (sorted by name), then entry-point packages."""
        disabled = read_disabled(self.settings_file)
        for folder in self._folders():
            self._load_folder(folder, disabled)
        if self.entry_points:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(ep, disabled)
        return self

    def _folders(self) -> list[Path]:
        if not self.extensions_dir.is_dir():
            return []
        return sorted(p for p in self.extensions_dir.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_")))

    def _load_folder(self, folder: Path, disabled: set[str]) -> None:
        name = folder.name
        try:
            meta = read_meta(folder)
        except ExtensionError as exc:
            self._add(ExtensionRecord(name, ExtensionMeta(name), folder, FAILED, [str(exc)]))
            return
        record = ExtensionRecord(name, meta, folder)
        self._add(record)
        if name in disabled:
            return
        if not meta.supports(self.easel_version):
            self._fail(record, f"needs Easel {meta.requires}; this is Easel {self.easel_version}")
            return
        try:
            module = import_folder(folder)
        except BaseException as exc:  # SyntaxError, ImportError, SystemExit...: never the app's problem
            self._fail(record, f"failed to load: {_describe(exc)}", exc)
            return
        self._register(record, module)

    def _load_entry_point(self, ep, disabled: set[str]) -> None:
        name = ep.name
        if name in self.records:
            log.warning("extension package %s ignored: a folder extension has that name", name)
            return
        version = getattr(ep.dist, "version", "") if getattr(ep, "dist", None) else ""
        record = ExtensionRecord(name, ExtensionMeta(name, version=version or ""), None)
        self._add(record)
        if name in disabled:
            return
        try:
            module = ep.load()
        except BaseException as exc:
            self._fail(record, f"failed to load: {_describe(exc)}", exc)
            return
        self._register(record, module)

    def _add(self, record: ExtensionRecord) -> None:
        self.records[record.name] = record
        for error in record.errors:
            log.error("extension %s: %s", record.name, error)

    def _register(self, record: ExtensionRecord, module: Any) -> None:
        try:
            self._pm.register(module, name=record.name)
        except Exception as exc:  # e.g. a hookimpl whose name is not in the contract
            self._fail(record, f"does not fit the extension contract: {exc}", exc)
            return
        record.module, record.status = module, LOADED
        log.info("extension %s %s loaded", record.name, record.meta.version)

    def _fail(self, record: ExtensionRecord, message: str, exc: BaseException | None = None) -> None:
        with self._lock:
            record.status = FAILED
            record.errors.append(message)
            if record.module is not None and self._pm.is_registered(record.module):
                self._pm.unregister(record.module)
        if exc is not None:
            log.error("extension %s: %s\n%s", record.name, message,
                      "".join(traceback.format_exception(exc)).rstrip())
        else:
            log.error("extension %s: %s", record.name, message)

    # -- state ---------------------------------------------------------------------------------------
    def record(self, name: str) -> ExtensionRecord:
        try:
            return self.records[name]
        except KeyError:
            raise ExtensionError(f"no extension named {name!r} (installed: {', '.join(self.records) or 'none'})") from None

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Remember the choice in the settings file. It takes effect at the next start (tabs and routes
        are built then); disabling also stops the extension's hooks now."""
        check_name(name)
        record = self.record(name)
        set_disabled(self.settings_file, name, disabled=not enabled)
        if not enabled:
            if record.module is not None and self._pm.is_registered(record.module):
                self._pm.unregister(record.module)
            record.status = DISABLED

    # -- calling hooks -------------------------------------------------------------------------------
    def has(self, hook_name: str) -> bool:
        return bool(getattr(self._pm.hook, hook_name).get_hookimpls())

    def call(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Each implementation on its own, in load order: [(extension name, result)] of those that did
        not raise. Hook wrappers are reported as errors and skipped."""
        results: list[tuple[str, Any]] = []
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            record = self.records.get(impl.plugin_name)
            if impl.hookwrapper or impl.wrapper:
                if record:
                    self._fail(record, f"{hook_name}: hook wrappers are not supported")
                continue
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as exc:
                if record:
                    self._fail(record, f"{hook_name} failed: {_describe(exc)}", exc)
                continue
            except BaseException as exc:  # SystemExit, KeyboardInterrupt...
                self._stopped_by_hook(impl.plugin_name, hook_name, exc)
            results.append((impl.plugin_name, result))
        return results

    def collect(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """What a `register_*` hook's implementations registered: [(extension name, item)]. Items of an
        extension whose hook raised are dropped with it."""
        items: list[tuple[str, Any]] = []
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            registered: list[Any] = []

            def register(*item: Any, _into: list[Any] = registered) -> None:
                _into.append(item[0] if len(item) == 1 else item)

            if self._call_one(impl, hook_name, {**kwargs, "register": register}):
                items.extend((impl.plugin_name, item) for item in registered)
        return items

    def _call_one(self, impl, hook_name: str, kwargs: dict[str, Any]) -> bool:
        record = self.records.get(impl.plugin_name)
        try:
            impl.function(*[kwargs[arg] for arg in impl.argnames])
        except BaseException as exc:  # SystemExit too: a registration that fails is skipped
            if _is_shutdown(exc):
                raise
            if record:
                self._fail(record, f"{hook_name} failed: {_describe(exc)}", exc)
            return False
        return True

    def _stopped_by_hook(self, name: str, hook_name: str, exc: BaseException) -> None:
        """A hook raised what is not an Exception (SystemExit, KeyboardInterrupt...): the extension is
        turned off like any failing one, and the work that called it (a job) stops with HookAborted naming
        it. Ctrl-C on the main thread stays what it is: the app shutting down."""
        if _is_shutdown(exc):
            raise exc
        if name in self.records:
            self._fail(self.records[name], f"{hook_name} raised {_describe(exc)}", exc)
        raise HookAborted(f"extension {name!r} stopped this: its {hook_name} hook raised {_describe(exc)} "
                          "(the extension is off until the next start)") from exc

    def fail(self, name: str, message: str, exc: BaseException | None = None) -> None:
        """For hosts: record a failure of extension `name` that happened outside a hook call (a UI
        build function, an API route include)."""
        if name in self.records:
            self._fail(self.records[name], message, exc)

    # -- what the hosts ask for ----------------------------------------------------------------------
    def adjust_request(self, request):
        """The request after every adjust_request implementation (chained; see the hook's docs)."""
        if not self.has("adjust_request"):
            return request
        from app.generation.request import GenerationRequest, validate_request

        for impl in self._pm.hook.adjust_request.get_hookimpls():
            record = self.records.get(impl.plugin_name)
            try:
                changed = impl.function(*[{"request": request}[a] for a in impl.argnames])
                if changed is None:
                    continue
                if not isinstance(changed, GenerationRequest):
                    raise TypeError(f"returned {type(changed).__name__}, not a GenerationRequest")
                request = validate_request(**dict(changed))  # model_copy does not validate
            except BaseException as exc:  # InvalidRequest names the field; SystemExit is skipped too
                if _is_shutdown(exc):
                    raise
                if record:
                    self._fail(record, f"adjust_request failed: {_describe(exc)}", exc)
        return request

    def step_end(self, job, step: int, total: int, latents) -> None:
        if self.has("on_step_end"):
            self.call("on_step_end", job=job, step=step, total=total, latents=latents)

    def image_saved(self, path: Path, infotext: str) -> None:
        if self.has("on_image_saved"):
            self.call("on_image_saved", path=Path(path), infotext=infotext)

    def model_families(self, easel=None) -> list:
        return [item for _, item in self.collect("register_model_families", easel=easel)]

    def upscalers(self, easel=None) -> list:
        return [item for _, item in self.collect("register_upscalers", easel=easel)]

    def presets(self, easel=None) -> dict:
        return {p.name: p for _, p in self.collect("register_presets", easel=easel)}

    def ui_tabs(self, easel) -> list[tuple[str, str, Callable[[], None]]]:
        """[(extension, title, build)]"""
        return [(ext, *item) for ext, item in self.collect("register_ui_tabs", easel=easel)]

    def ui_sections(self, tab) -> list[tuple[str, str, Callable[[], None]]]:
        """[(extension, title, build)] for one tab."""
        return [(ext, *item) for ext, item in self.collect("register_ui_sections", tab=tab)]

    def api_router(self, easel):
        """One router with each extension's routes under /ext/<name>; an extension whose hook raises
        adds none."""
        from fastapi import APIRouter

        from app.extensions.routes import extension_router

        combined = APIRouter()
        for impl in self._pm.hook.register_api_routes.get_hookimpls():
            own = extension_router(impl.plugin_name)
            if self._call_one(impl, "register_api_routes", {"router": own, "easel": easel}):
                combined.include_router(own, prefix=f"/ext/{impl.plugin_name}")
        return combined


def _is_shutdown(exc: BaseException) -> bool:
    """Ctrl-C reaches only the main thread: there a KeyboardInterrupt is the app being stopped."""
    return isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
