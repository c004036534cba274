"""A small local server for a CMOS test folder (standard library only).

It serves the page and its audio, and nothing else of the folder (not `key.json`, not `answers.jsonl`), and appends
each valid `POST /submit` to `answers.jsonl` ([`append_submission`]). By default it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .answers import append_submission, validate_submission
from .build import ANSWERS_FILE, AUDIO_DIR, INDEX_FILE, load_key

__all__ = ["CMOSServer"]

logger = logging.getLogger(__name__)

MAX_SUBMISSION_BYTES = 1 << 20
_AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`(start, end)` (inclusive) of a single `bytes=` range, or None for no range / one this server ignores."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].strip().partition("-")
    try:
        if first == "":  # the last `last` bytes
            return max(0, size - int(last)), size - 1
        return int(first), (min(int(last), size - 1) if last else size - 1)
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "ardm_trl-cmos"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Accept-Ranges", "bytes")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: HTTPStatus, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _resolve(self) -> Path | None:
        """The file a GET may read: the page, or a file directly inside `audio/`."""
        path = unquote(urlsplit(self.path).path)
        if path in ("/", f"/{INDEX_FILE}"):
            return self.server.test_dir / INDEX_FILE
        folder, _, name = path.lstrip("/").partition("/")
        if folder != AUDIO_DIR or not name or "/" in name or name.startswith("."):
            return None
        file = self.server.test_dir / AUDIO_DIR / name
        return file if file.is_file() else None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        file = self._resolve()
        if file is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        content_type = _AUDIO_TYPES.get(file.suffix.lower()) or mimetypes.guess_type(file.name)[0]
        if file.suffix == ".html":
            content_type = "text/html; charset=utf-8"
        body = file.read_bytes()
        byte_range = _parse_range(self.headers.get("Range"), len(body))
        if byte_range is None:
            self._send(HTTPStatus.OK, body, content_type or "application/octet-stream")
            return
        start, end = byte_range  # a byte range lets the browser's audio player seek
        if start >= len(body):
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(HTTPStatus.PARTIAL_CONTENT, body[start:end + 1], content_type or "application/octet-stream",
                   {"Content-Range": f"bytes {start}-{end}/{len(body)}"})

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802
        if urlsplit(self.path).path != "/submit":
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_SUBMISSION_BYTES:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": f"body must be 1..{MAX_SUBMISSION_BYTES} bytes"})
            return
        try:
            submission = json.loads(self.rfile.read(length))
            validate_submission(submission, self.server.key)
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return
        submission["received_at"] = datetime.now(timezone.utc).isoformat()
        append_submission(self.server.answers_path, submission)
        logger.info("Saved the answers of listener %r (%d items)", submission["listener"], len(submission["answers"]))
        self._send_json(HTTPStatus.OK, {"ok": True, "items": len(submission["answers"])})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], test_dir: Path, answers_path: Path):
        self.test_dir = test_dir
        self.key = load_key(test_dir)
        self.answers_path = answers_path
        super().__init__(address, _Handler)


class CMOSServer:
    """Serve a CMOS test folder and collect its answers.

    Args:
        test_dir (`str` or `Path`):
            A folder made by [`build_cmos_test`].
        host (`str`, *optional*, defaults to `"127.0.0.1"`):
            Interface to listen on. Keep the default unless listeners connect from other machines of a network you
            trust: the server has no authentication.
        port (`int`, *optional*, defaults to `0`):
            Port; `0` picks a free one (see `url`).
        answers_path (`str` or `Path`, *optional*):
            Where to append submissions; defaults to `test_dir/answers.jsonl`.

    Example:
    ```python
    with CMOSServer("cmos_test") as server:  # serves in a background thread
        print(server.url)
    CMOSServer("cmos_test", port=8000).serve_forever()  # blocks until Ctrl-C
    ```
    """

    def __init__(self, test_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                 answers_path: str | Path | None = None):
        test_dir = Path(test_dir)
        if not (test_dir / INDEX_FILE).is_file():
            raise ValueError(f"{test_dir} has no {INDEX_FILE}: build the test first (`python -m ardm_trl.listening "
                             "build`).")
        answers_path = Path(answers_path) if answers_path is not None else test_dir / ANSWERS_FILE
        self._httpd = _HTTPServer((host, port), test_dir, answers_path)
        self._thread: threading.Thread | None = None

    @property
    def answers_path(self) -> Path:
        return self._httpd.answers_path

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def serve_forever(self) -> None:
        """Serve in this thread until `shutdown` (from another thread) or KeyboardInterrupt."""
        logger.info("Serving the CMOS test at %s (answers -> %s)", self.url, self.answers_path)
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def start(self) -> CMOSServer:
        """Serve in a background (daemon) thread; returns `self`."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cmos-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> CMOSServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
