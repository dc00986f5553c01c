"""``vasa3d view``: serve an exported folder on 127.0.0.1 (browsers load ES modules only over HTTP)."""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import threading


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".json": "application/json", ".bin": "application/octet-stream",
                      ".ply": "application/octet-stream", ".wav": "audio/wav"}

    def log_message(self, *args):  # quiet: the URL is what the user needs
        pass


def make_server(folder: str | os.PathLike, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``folder`` on 127.0.0.1 (``port`` 0: any free port); not started."""
    folder = pathlib.Path(folder)
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(f"{folder / 'index.html'} not found; write the folder with "
                                "`vasa3d export --out DIR` first")
    handler = functools.partial(_Handler, directory=str(folder))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(folder: str | os.PathLike, port: int = 8000, background: bool = False):
    """Serves ``folder``; prints and returns the URL. Blocks until Ctrl-C unless ``background``
    (then returns (url, server); stop it with ``server.shutdown()``)."""
    server = make_server(folder, port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    if background:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return url, server
    print(f"serving {folder} at {url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return url
