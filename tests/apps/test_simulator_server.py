"""The simulators' server binds its port when it starts. A port picked at construction may be taken by then (a busy
machine hands the same range out as the local ports of its own connections): one not asked for is picked anew, one
asked for is an error."""

from __future__ import annotations

import errno
import socket

import httpx
import pytest

from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.databasement import create_app, demo_databasement

from .conftest import NOW


def test_a_port_taken_before_the_start_is_picked_anew() -> None:
    server = SimulatorServer(create_app(demo_databasement(NOW)), tls=False)
    picked = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", picked))
        squatter.listen()
        with server:
            assert server.port != picked
            answer = httpx.get(f"{server.url}/api/v1/snapshots", headers={"Accept": "application/json"}, timeout=5)
    assert answer.status_code == 401, "the simulator itself answers on the port picked anew (no token: 401)"


def test_a_port_asked_for_and_taken_is_an_error() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = SimulatorServer(create_app(demo_databasement(NOW)), tls=False, port=taken)
        with pytest.raises(OSError) as raised:
            server.start()
        assert raised.value.errno == errno.EADDRINUSE and server.port == taken
        server.stop()
