"""The sandbox's ports: free when picked, and never ones the kernel hands out to
connections on its own (its ephemeral range), which a test's own connections could be
given between the pick and the server's bind."""

from __future__ import annotations

import socket
from pathlib import Path

from mailbag.sandbox import dovecot
from mailbag.sandbox.dovecot import free_ports


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    low = _ephemeral_low()
    for _ in range(20):
        ports = free_ports(5)
        assert len(set(ports)) == 5
        assert all(dovecot._SANDBOX_PORTS_FROM <= p < low for p in ports), (ports, low)
        held = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in ports]
        try:
            for s, port in zip(held, ports, strict=True):
                s.bind(("127.0.0.1", port))  # free: a server can take it
        finally:
            for s in held:
                s.close()


def test_a_port_in_use_is_passed_over() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", free_ports(1)[0]))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            assert not dovecot._bind_one_of(s, range(port, port + 1))
