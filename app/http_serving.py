"""Serve one ASGI app (the API, or the API with the web UI mounted on it) with uvicorn.

    server = HttpServer(app, "127.0.0.1", 7860)
    server.start()        # returns once the port answers (or raises naming the port)
    server.wait()         # until Ctrl+C / stop()
"""

from __future__ import annotations

import asyncio
import threading

import uvicorn

START_TIMEOUT_S = 60


class _Server(uvicorn.Server):
    """uvicorn's server, telling when it listens (an event, not a flag to poll)."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.listening.set()

    def install_signal_handlers(self) -> None:  # the main thread keeps Python's own Ctrl+C handling
        pass


class HttpServer:
    def __init__(self, app, host: str, port: int, *, log_level: str = "warning"):
        self.host, self.port = host, port
        self._server = _Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on"))
        self._thread = threading.Thread(target=self._serve, name="easel-http", daemon=True)
        self._error: BaseException | None = None
        self._stopped = threading.Event()

    @property
    def local_url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{shown}:{self.port}/"

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Listen in a background thread; returns the local URL once the port answers."""
        self._thread.start()
        listening = self._server.listening.wait(timeout)
        if not listening or self._stopped.is_set():  # timed out, or the server thread already ended
            self.stop()
            reason = f": {self._error}" if self._error else " (is the port in use?)"
            raise OSError(f"could not serve on {self.host}:{self.port}{reason}")
        if self.port == 0:  # the system picked a free port: tell which
            self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.local_url

    def wait(self) -> None:
        """Block until stopped (Ctrl+C stops it)."""
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self, timeout: float = 15) -> None:
        self._server.should_exit = True
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # uvicorn exits with SystemExit when it cannot bind
            self._error = exc if not isinstance(exc, SystemExit) else None
        finally:
            self._stopped.set()
            self._server.listening.set()  # wake start(): it tells a failed start from a good one
