"""A real OpenAI-compatible LLM server for the tests: llama-cpp-python's own (``python -m
llama_cpp.server``, the ``server`` extra) serving an embedded GGUF on 127.0.0.1 at a free port, as
a child process the test can kill (SIGKILL) or freeze (SIGSTOP) and thaw (SIGCONT)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LlmServer:
    model: Path
    port: int
    log: Path
    api_key: str = ""
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 120.0) -> LlmServer:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False"]
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the LLM server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            req = urllib.request.Request(self.url + "/models", headers={"Authorization": f"Bearer {self.api_key}"})
            try:
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the LLM server did not come up in {timeout_s:g} s: {self.log.read_text()[-2000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: the server dies on the spot, mid-reply if it was writing one."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot die of SIGTERM
            self.proc.kill()
            self.proc.wait(10)

    def chat_requests(self) -> int:
        """Chat requests the server has answered (its access log's lines)."""
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')
