"""A real API server on a free loopback port, in a background thread, for one test module."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
import uvicorn
from PIL import Image

from app.engine.engine import Engine
from app.settings import Settings

START_TIMEOUT_S = 30


@dataclass
class LiveApi:
    base_url: str
    client: httpx.Client
    engine: Engine
    outputs: Path

    def url(self, path: str) -> str:
        return f"{self.base_url}/sdapi/v1/{path.lstrip('/')}"

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(self.url(path), **kw)

    def post(self, path: str, json=None, **kw) -> httpx.Response:
        return self.client.post(self.url(path), json=json, **kw)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="api-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def stop_server(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=15)


def make_models_dir(root: Path, demo_models_dir: Path) -> Path:
    """The demo models (linked, not copied) plus a LoRA, a VAE file and a corrupt model file."""
    import torch
    from safetensors.torch import save_file

    models = root / "models"
    models.mkdir()
    (models / "demo").symlink_to(demo_models_dir / "demo", target_is_directory=True)
    (models / "loras").mkdir()
    save_file({"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(1, 1),
               "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(1, 1)},
              str(models / "loras" / "tiny-detail.safetensors"))
    (models / "diffusion_models").mkdir()
    (models / "diffusion_models" / "broken-model.safetensors").write_bytes(b"\x10\x00\x00\x00not a header")
    return models


def api_settings(models: Path, outputs: Path) -> Settings:
    return Settings(models_dir=models, outputs_dir=outputs, device="cpu", max_loaded_models=2,
                    settings_file=outputs / "settings.json")


def build_engine(models: Path, outputs: Path) -> Engine:
    return Engine(api_settings(models, outputs))


LAUNCH_MODES = ("nowebui", "webui+api")


@dataclass
class Served:
    base_url: str
    engine: Engine
    close: Callable[[], None]


def serve_mode(mode: str, settings: Settings, *, auth: dict | None = None) -> Served:
    """Easel served as a user starts it: `--nowebui` (the API alone) or `--api` (the web UI with the
    API on the same port), on a port the system picks, with the real launch code."""
    if mode == "nowebui":
        from app.api.server import serve_api

        server, engine = serve_api(settings, "127.0.0.1", 0, auth=auth, block=False)
        return Served(server.local_url.rstrip("/"), engine, lambda: (server.stop(), engine.close()))
    if mode == "webui+api":
        from app.ui.launch import launch_webui

        web = launch_webui(settings, host="127.0.0.1", port=0, share=False, auth=[], api=True, api_auth=auth,
                           cors=[], preset=None, block=False)
        return Served(web.url.rstrip("/"), web.engine, web.close)
    raise ValueError(f"unknown launch mode {mode!r}")


def png_b64(image: Image.Image, **save_kw) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_kw)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_png(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image
