"""One streamed chat completion from an OpenAI-compatible server (llama.cpp's, vLLM, Ollama), with
deadlines a visitor can live with.

The HTTP exchange runs in a reader thread of its own that hands raw SSE lines over a queue; the
caller's thread only waits on that queue, with a deadline. So no blocking call (connect, TLS, a
server that accepted the connection and then froze) can hold the turn longer than the deadline,
whatever the socket does: on a deadline or a cancel the socket is shut down, which ends the reader
thread and tells the server to stop generating.

Standard library only (``http.client`` + ``ssl``): one POST and one GET need no HTTP stack, and the
box installs nothing new for it.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# A socket left over after a deadline (its reader thread) gives up on its own after this long.
SOCKET_TIMEOUT_S = 30.0
_EOF = object()


@dataclass(frozen=True)
class Endpoint:
    """Where the shared server is and how to talk to it."""

    base_url: str                               # the API base, e.g. http://10.0.0.5:8000/v1
    model: str = ""                             # the model name each request carries
    api_key: str = field(default="", repr=False)  # a Bearer token; never in a repr or a log line
    ca_file: str = ""                           # PEM CA for https; "" = the system's CAs

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def connection(self, timeout: float) -> tuple[http.client.HTTPConnection, str]:
        """A connection to the server and the path prefix of the API."""
        u = urlsplit(self.base_url)
        if u.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_file or None)  # verified, always
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout,
                                                                           context=ctx)
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        return conn, u.path.rstrip("/")


class ServerError(Exception):
    """The server did not give a usable reply; ``code`` says how (for the journal's CODE field)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Exchange:
    """One POST in its own thread; raw response lines (or the error, or the end) come out of ``lines``."""

    def __init__(self, endpoint: Endpoint, body: dict) -> None:
        self.endpoint = endpoint
        self.body = json.dumps(body).encode()
        self.lines: queue.SimpleQueue = queue.SimpleQueue()
        self._conn: http.client.HTTPConnection | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="llm-server-reader", daemon=True).start()

    def _run(self) -> None:
        try:
            conn, prefix = self.endpoint.connection(SOCKET_TIMEOUT_S)
            conn.connect()  # here, not inside request(): a close() during the connect is seen below
            with self._lock:
                if self._closed.is_set():  # given up on meanwhile: ask the server for nothing
                    conn.close()
                    return
                self._conn = conn
            conn.request("POST", prefix + "/chat/completions", body=self.body, headers=self.endpoint.headers())
            resp = conn.getresponse()
            if resp.status != 200:
                detail = resp.read(400).decode("utf-8", "replace").strip()
                self.lines.put(ServerError(f"http_{resp.status}", f"the server answered HTTP {resp.status}: {detail}"))
                return
            for line in resp:  # SSE: one "data: {...}" line per chunk
                self.lines.put(line)
            self.lines.put(_EOF)
        except Exception as e:  # noqa: BLE001 - whatever broke, the caller gets a ServerError
            # After close() the error is our own doing (http.client may trip over its own closed
            # response then), and nobody is waiting for it.
            if not self._closed.is_set():
                kind = "tls" if isinstance(e, ssl.SSLError) else \
                    "unreachable" if isinstance(e, (OSError, http.client.HTTPException)) else "bad_reply"
                self.lines.put(ServerError(kind, f"the server failed: {e.__class__.__name__}: {e}"))

    def close(self) -> None:
        """Stop the exchange now: shutting the socket down unblocks the reader at once (a plain close
        would not) and the server sees the client go, so it stops generating."""
        with self._lock:
            self._closed.set()
            conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def stream_chat(endpoint: Endpoint, body: dict, cancel: threading.Event, *, first_token_s: float,
                stall_s: float) -> Iterator[str]:
    """Stream the reply's text pieces. Raises :class:`ServerError` when no first piece comes within
    ``first_token_s`` (connecting included), when the server goes quiet for ``stall_s`` between
    pieces, or when the stream ends without the server saying it is done. Returns quietly once
    ``cancel`` is set (checked at least every 50 ms)."""
    ex = _Exchange(endpoint, {**body, "stream": True})
    deadline = time.monotonic() + first_token_s
    got_text = False
    try:
        while True:
            if cancel.is_set():
                return
            wait = deadline - time.monotonic()
            if wait <= 0:
                if got_text:
                    raise ServerError("stalled", f"the server sent nothing for {stall_s:g} s mid-reply")
                raise ServerError("first_token_timeout", f"no reply from the server within {first_token_s:g} s")
            try:
                item = ex.lines.get(timeout=min(wait, 0.05))
            except queue.Empty:
                continue
            if isinstance(item, ServerError):
                if got_text and item.code in ("unreachable", "bad_reply"):  # a reset or a cut chunk
                    raise ServerError("lost_mid_reply", f"{item} (mid-reply)")
                raise item
            if item is _EOF:
                raise ServerError("lost_mid_reply" if got_text else "no_reply",
                                  "the server's stream ended before the reply did")
            line = item.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators, ": ping" comments: not progress, the deadline stands
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError as e:
                raise ServerError("bad_reply", f"the server sent something that is not JSON: {data[:80]!r}") from e
            if "error" in chunk:
                raise ServerError("server_error", f"the server reported an error: {str(chunk['error'])[:200]}")
            choice = (chunk.get("choices") or [{}])[0]
            piece = (choice.get("delta") or {}).get("content") or ""
            if piece:
                got_text = True
                yield piece
                # Counted from here, not from the piece's arrival: the turn may hold this generator
                # while the first sentence is voiced, and that wait is not the server's.
                deadline = time.monotonic() + stall_s
            if choice.get("finish_reason"):
                return
    finally:
        ex.close()


def answers(endpoint: Endpoint, timeout: float) -> bool:
    """Whether the server answers its model list (the cheap "are you back?" question) within ``timeout``."""
    result: list[bool] = []

    def ask() -> None:
        try:
            conn, prefix = endpoint.connection(timeout)
            try:
                conn.request("GET", prefix + "/models", headers=endpoint.headers())
                result.append(conn.getresponse().status == 200)
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, ValueError):
            result.append(False)

    t = threading.Thread(target=ask, name="llm-server-probe", daemon=True)
    t.start()
    t.join(timeout)  # a frozen server can hold a read past the socket timeout's per-call limit
    return bool(result and result[0])
