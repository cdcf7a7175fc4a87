"""What the benchmarks that start `encaisse serve` share: a free port, and waiting for the server to answer."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, deadline_s: float = 120.0) -> None:
    """Poll ``url`` until it answers 200, or raise after ``deadline_s`` seconds."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling a child process's start-up, bounded by the deadline
    raise RuntimeError(f"{url} did not answer within {deadline_s:.0f} s")
