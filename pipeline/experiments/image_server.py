"""A small HTTP server on 127.0.0.1 that serves image files, for demos, tests and benchmarks.

Besides the files (`/img/<name>`) it has the failures a crawl meets: `/missing/...` answers 404,
`/html/...` a web page instead of an image, `/slow/<name>` holds the request until `release()` is called (or
the server stops), so a client's timeout always passes first, however loaded the machine; `slow_reached` is
set when the first one arrives, an event a test can wait for. `/flaky/<name>` fails with 503 until `heal()`
is called, then serves the file. Every request path is recorded, so a test can check that nothing unlisted
was fetched.
"""

from __future__ import annotations

import mimetypes
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def unpack_jpegs(archive: Path, folder: Path, limit: int) -> dict[str, Path]:
    """The first `limit` JPEGs of a tar archive (CIFAR-10's), as served names -> files in folder."""
    files: dict[str, Path] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                path = Path(folder) / member.name.replace("/", "_")
                path.write_bytes(tar.extractfile(member).read())
                files[path.name] = path
                if len(files) == limit:
                    break
    return files


# The only range the demo, the experiment, the tests and the benchmarks let downloads reach besides public ones
SERVED_FROM = ("127.0.0.1/32",)


class ImageServer:
    def __init__(self, files: dict[str, Path], port: int = 0):
        self.files = dict(files)
        self.redirects: dict[str, str] = {}  # /redirect/NAME answers 302 to the url given here
        self.slow_reached = threading.Event()
        self._released = threading.Event()
        self.requests: list[str] = []
        self.flaky_healed = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, route: str, name: str) -> str:
        return f"{self.base_url}/{route}/{name}"

    def heal(self) -> None:
        self.flaky_healed = True

    def release(self) -> None:
        """Answer the held /slow/ requests, and every later one at once."""
        self._released.set()

    def __enter__(self) -> "ImageServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(handler.path)
        route, _, name = handler.path.lstrip("/").partition("/")
        if route == "slow":
            self.slow_reached.set()
            self._released.wait()
            route = "img"
        if route == "flaky":
            route = "img" if self.flaky_healed else "unavailable"
        if route == "redirect" and name in self.redirects:
            self._send(handler, 302, b"", "text/plain", {"Location": self.redirects[name]})
        elif route == "noai" and name in self.files:  # the image, with an opt-out header
            self._send(handler, 200, self.files[name].read_bytes(), "image/jpeg", {"X-Robots-Tag": "noai"})
        elif route == "html":
            self._send(handler, 200, b"<html><body>not an image</body></html>", "text/html")
        elif route == "img" and name in self.files:
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self._send(handler, 200, self.files[name].read_bytes(), kind)
        elif route == "unavailable":
            self._send(handler, 503, b"try again later", "text/plain")
        else:
            self._send(handler, 404, b"not found", "text/plain")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, body: bytes, kind: str,
              headers: dict[str, str] | None = None) -> None:
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", kind)
            for header, value in (headers or {}).items():
                handler.send_header(header, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): nothing to answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                server._respond(self)

            def log_message(self, *args) -> None:
                pass

        return Handler
