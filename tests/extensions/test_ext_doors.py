"""When others can reach the UI, the Extensions tab changes nothing; the index loader reads only the
configured http(s) indexes, never a file."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gradio as gr
import pytest

from app.extensions.actions import ExtensionActions
from app.extensions.gate import INSECURE_FLAG, LOCAL, gate_for_server
from app.extensions.index import A1111_INDEX_URL, load_index
from app.extensions.manager import DISABLED, LOADED
from app.extensions.meta import ExtensionError
from app.extensions.state import read_disabled
from app.extensions.ui import build_extensions_tab

CLOSED = gate_for_server("0.0.0.0", share=False, insecure_access=False)
INDEX = {"extensions": [{"name": "One", "url": "https://example.com/one.git", "description": "first"}]}


@pytest.fixture
def installed(ext_dir, make_ext, settings_file, new_manager):
    make_ext(ext_dir, "kept-on", "")
    settings_file.write_text('{"disabled_extensions": [], "theme": "dark"}\n')
    return new_manager()


@pytest.fixture
def index_server(tmp_path):
    """An index served on loopback: (base URL, the paths it was asked for). /to-file and /to-ftp redirect."""
    (tmp_path / "index.json").write_text(json.dumps(INDEX))
    body = json.dumps(INDEX).encode()
    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            if self.path in ("/to-file", "/to-ftp"):
                self.send_response(302)
                self.send_header("Location", (tmp_path / "index.json").as_uri() if self.path == "/to-file"
                                 else "ftp://127.0.0.1/index.json")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", asked
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def clicked(blocks, button):
    """The handler the page runs when `button` is clicked."""
    return next(f.fn for f in blocks.fns.values() if (button._id, "click") in [tuple(t) for t in f.targets])


def test_the_tab_refuses_enable_and_disable_when_others_can_reach_it(installed, settings_file):
    before = settings_file.read_bytes()
    with gr.Blocks() as blocks:
        tab = build_extensions_tab(installed, CLOSED)
    for action in ("enable", "disable"):
        assert tab[action].interactive is False
        log = clicked(blocks, tab[action])("kept-on")[-1]
        assert log.startswith(f"error: cannot {action} extensions: the UI is reachable from other machines")
        assert INSECURE_FLAG in log
    assert settings_file.read_bytes() == before
    assert installed.record("kept-on").status == LOADED


def test_on_this_machine_the_tab_disables_an_extension(installed, settings_file):
    with gr.Blocks() as blocks:
        tab = build_extensions_tab(installed, LOCAL)
    assert tab["disable"].interactive is True
    log = clicked(blocks, tab["disable"])("kept-on")[-1]
    assert log.startswith("kept-on disabled.")
    assert read_disabled(settings_file) == {"kept-on"}
    assert json.loads(settings_file.read_text())["theme"] == "dark"
    assert installed.record("kept-on").status == DISABLED


def test_every_change_is_refused_before_it_starts(installed, ext_dir, tmp_path, make_ext, index_server):
    url, asked = index_server
    src = make_ext(tmp_path / "src", "newcomer", "")
    actions = ExtensionActions(installed, CLOSED, index_urls=(f"{url}/index.json",))
    for what, call in (("install", lambda: actions.install(str(src))), ("update", lambda: actions.update("kept-on")),
                       ("remove", lambda: actions.remove("kept-on")),
                       ("list available", lambda: actions.load_index(f"{url}/index.json"))):
        with pytest.raises(ExtensionError, match=f"cannot {what} extensions: .*{INSECURE_FLAG}"):
            call()
    assert sorted(p.name for p in ext_dir.iterdir()) == ["kept-on"]
    assert asked == []


def test_the_tab_reads_a_configured_index(installed, index_server):
    url, asked = index_server
    entries = ExtensionActions(installed, LOCAL, index_urls=(f"{url}/index.json",)).load_index(f"{url}/index.json")
    assert [(e.name, e.url) for e in entries] == [("One", "https://example.com/one.git")]
    assert asked == ["/index.json"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "../x", "ftp://x", "FILE:///etc/passwd",
                                 "data:application/json,{}", "http://", ""])
@pytest.mark.parametrize("allowed", ["configured", "any web URL"])
def test_only_http_urls_are_read(url, allowed):
    with pytest.raises(ExtensionError, match="only http:// and https:// URLs are read") as refused:
        load_index(url, **({"allowed": None} if allowed == "any web URL" else {}))
    if allowed == "configured":
        assert A1111_INDEX_URL in str(refused.value)


def test_a_file_url_is_refused_even_when_the_file_is_an_index(tmp_path):
    index = tmp_path / "index.json"
    index.write_text(json.dumps(INDEX))
    for url in (index.as_uri(), str(index)):
        with pytest.raises(ExtensionError, match="no file:// URLs or paths"):
            load_index(url, allowed=None)


def test_the_ui_reads_no_index_but_the_configured_one(index_server):
    url, asked = index_server
    with pytest.raises(ExtensionError, match=f"not a configured extension index; allowed: {A1111_INDEX_URL}"):
        load_index(f"{url}/index.json")
    assert asked == []
    assert [e.name for e in load_index(f"{url}/index.json", allowed=None)] == ["One"]  # the command line's way


@pytest.mark.parametrize("path", ["/to-file", "/to-ftp"])
def test_a_redirect_leads_only_to_http(index_server, path):
    url, asked = index_server
    with pytest.raises(ExtensionError, match=f"cannot read the index {url}{path}: .*not allowed|only http"):
        load_index(f"{url}{path}", allowed=None)
    assert asked == [path]
