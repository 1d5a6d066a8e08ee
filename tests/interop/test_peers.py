"""The helpers that start real peers: a port is handed out once, and a peer that could not bind its port
is an error, never a stranger's listener taken for it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.interop.peers import _ephemeral_range, free_port, wait_for_port

LISTEN = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
    "time.sleep(30)"
)


def test_free_ports_are_outside_the_ephemeral_range_and_never_repeated() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200
    assert not any(low <= p <= high for p in ports)


def test_a_peer_listening_on_its_port_is_found() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LISTEN, str(port)])
    try:
        wait_for_port(port, proc, timeout=10)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_port_held_by_another_process_is_an_error() -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", free_port()))
        stranger.listen()
        port = stranger.getsockname()[1]
        # A peer that fails to bind lives a moment before it exits; this one never binds at all.
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            with pytest.raises(RuntimeError, match="held by another process"):
                wait_for_port(port, proc, timeout=10)
        finally:
            proc.kill()
            proc.wait()
