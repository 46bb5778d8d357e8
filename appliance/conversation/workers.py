"""One engine, one thread: blocking inference off the event loop.

A generator is consumed entirely in its worker (a lazy generator iterated on the loop would block
the loop); each item and the end (or the error) are handed back with ``call_soon_threadsafe``.

Priorities: on two cores the LLM (two threads) and whisper would take every cycle, and the face
(drawn on the loop thread, ~15 ms a frame) would freeze while the kiosk thinks. Inference workers
therefore run at a lower scheduling priority (``nice``), and so do the OpenMP threads llama.cpp and
CTranslate2 start from them (a thread inherits its creator's nice value): the face takes the CPU
when a frame is due, inference takes the rest. Raising the nice value needs no privilege.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

NICE = {"llm": 10, "stt": 10, "tts": 5}  # the voice before the thinking: it must not run dry mid-reply


def lower_priority(nice: int) -> None:
    """This thread (and threads it starts from now on) yields the CPU to the loop thread: ``nice``
    steps below the process (the service's own Nice= stays the reference)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:  # not Linux, or a sandbox that refuses it: only smoothness is lost
        pass


class EngineWorker:
    def __init__(self, name: str) -> None:
        nice = NICE.get(name, 0)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name,
                                       initializer=lower_priority if nice else None,
                                       initargs=(nice,) if nice else ())

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def submit(self, fn, *args):
        """Run ``fn(*args)`` in the worker; an asyncio future for its result."""
        return asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def stream(self, gen_fn, *args, on_item: Callable, on_done: Callable[[BaseException | None], None],
               gate: threading.Event | None = None) -> None:
        """Run ``gen_fn(*args)`` in the worker; hand items and the end (or error) to the loop. While
        ``gate`` is cleared the generator is not advanced (its thread computes nothing)."""
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                for item in gen_fn(*args):
                    loop.call_soon_threadsafe(on_item, item)
                    while gate is not None and not gate.wait(0.05):
                        pass
            except Exception as e:  # noqa: BLE001 - reported to the loop, which decides
                loop.call_soon_threadsafe(on_done, e)
                return
            loop.call_soon_threadsafe(on_done, None)

        self.pool.submit(run)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Workers:
    """The conversation's worker threads, one per engine (and one for the VAD's second opinion)."""

    def __init__(self, wake: bool) -> None:
        self.stt = EngineWorker("stt")
        self.llm = EngineWorker("llm")
        self.tts = EngineWorker("tts")
        self.vad = EngineWorker("vad")
        self.wake = EngineWorker("wake") if wake else None

    def close(self) -> None:
        for w in (self.stt, self.llm, self.tts, self.vad, self.wake):
            if w is not None:
                w.close()
