"""Tokens, TLS and broken answers: each failure of a PBS/PVE source becomes the right SourceError."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import PBS_SECRET, PVE_SECRET, Clock, pbs_config, pve_config

from backup_glance.errors import (
    SourceAuthError,
    SourceProtocolError,
    SourceTimeout,
    SourceTLSError,
    SourceUnreachable,
)
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.pbs import create_pbs_app
from backup_glance.simulators.proxmox_lab import ProxmoxLab
from backup_glance.sources.pbs import PbsSource
from backup_glance.sources.pve import PveSource

OTHER_FINGERPRINT = ":".join(["ab"] * 32)


@pytest.fixture
def slow_auth_pbs(lab: ProxmoxLab) -> Iterator[SimulatorServer]:
    app = create_pbs_app(lab, token_id="monitor@pbs!glance", token_secret=PBS_SECRET)
    app.faults.auth_failure_delay_s = 0.5
    with SimulatorServer(app) as server:
        yield server


class TestTokens:
    async def test_a_rejected_pbs_token_is_an_auth_error_without_the_secret(self, pbs_server: SimulatorServer) -> None:
        source = PbsSource(pbs_config(pbs_server, token_secret="wrong-secret-123"), clock=Clock())
        with pytest.raises(SourceAuthError, match=r"pbs 'pbs1': token rejected \(HTTP 401\)") as caught:
            await source.poll()
        await source.aclose()
        assert caught.value.permanent
        assert "wrong-secret-123" not in str(caught.value) and "wrong-secret-123" not in repr(source)

    async def test_pbs_delays_a_failed_login(self, slow_auth_pbs: SimulatorServer) -> None:
        source = PbsSource(pbs_config(slow_auth_pbs, token_secret="nope"), clock=Clock())
        started = time.monotonic()
        with pytest.raises(SourceAuthError):
            await source.poll()
        await source.aclose()
        assert time.monotonic() - started >= 0.5

    async def test_a_rejected_pve_token_is_an_auth_error_without_the_secret(self, pve_server: SimulatorServer) -> None:
        pve_server.app.faults.unauthorized = True
        source = PveSource(pve_config(pve_server), clock=Clock())
        with pytest.raises(SourceAuthError, match=r"pve 'pve1': token rejected \(HTTP 401\) on /cluster/resources"):
            await source.poll()
        await source.aclose()

    async def test_the_token_travels_only_in_the_header(self, pbs_server: SimulatorServer) -> None:
        source = PbsSource(pbs_config(pbs_server), clock=Clock())
        await source.poll()
        await source.aclose()
        calls = pbs_server.app.requests.calls
        assert calls and all(PBS_SECRET not in f"{path}{query}" for path, query in calls)
        assert PVE_SECRET not in repr(source)


class TestTls:
    async def test_a_fingerprint_mismatch_is_refused(self, pbs_server: SimulatorServer) -> None:
        source = PbsSource(pbs_config(pbs_server, fingerprint=OTHER_FINGERPRINT), clock=Clock())
        with pytest.raises(SourceTLSError, match="certificate fingerprint mismatch"):
            await source.poll()
        await source.aclose()

    async def test_a_fingerprint_mismatch_stops_the_handshake_before_any_request(
        self, pbs_server: SimulatorServer
    ) -> None:
        source = PbsSource(pbs_config(pbs_server, fingerprint=OTHER_FINGERPRINT), clock=Clock())
        with pytest.raises(SourceTLSError, match="certificate fingerprint mismatch: server presents") as caught:
            await source.poll()
        await source.aclose()
        assert caught.value.permanent
        assert pbs_server.fingerprint and pbs_server.fingerprint in str(caught.value)
        # The pin is checked inside the TLS handshake: the server never saw a request, nor the token in it.
        assert pbs_server.app.requests.calls == []

    async def test_the_fingerprint_may_be_upper_case_without_colons(self, pve_server: SimulatorServer) -> None:
        assert pve_server.fingerprint
        pin = pve_server.fingerprint.replace(":", "").upper()
        source = PveSource(pve_config(pve_server, fingerprint=pin), clock=Clock())
        obs = await source.poll()
        await source.aclose()
        assert len(obs.targets) == 12

    async def test_a_ca_file_verifies_the_certificate(self, pbs_server: SimulatorServer) -> None:
        source = PbsSource(pbs_config(pbs_server, fingerprint=None, ca_file=pbs_server.ca_file), clock=Clock())
        obs = await source.poll()
        await source.aclose()
        assert len(obs.targets) == 10

    async def test_an_untrusted_certificate_without_a_pin_fails(self, pve_server: SimulatorServer) -> None:
        source = PveSource(pve_config(pve_server, fingerprint=None), clock=Clock())
        with pytest.raises(SourceTLSError, match="certificate not trusted"):
            await source.poll()
        await source.aclose()


class TestBrokenAnswers:
    async def test_malformed_json_is_a_protocol_error(self, pbs_server: SimulatorServer) -> None:
        pbs_server.app.faults.malformed_json = True
        source = PbsSource(pbs_config(pbs_server), clock=Clock())
        with pytest.raises(SourceProtocolError, match="malformed JSON on /nodes/localhost/time"):
            await source.poll()
        await source.aclose()

    async def test_a_truncated_body_is_a_protocol_error(self, pve_server: SimulatorServer) -> None:
        pve_server.app.faults.truncated = True
        source = PveSource(pve_config(pve_server), clock=Clock())
        with pytest.raises(SourceProtocolError, match="truncated response on /cluster/resources"):
            await source.poll()
        await source.aclose()

    async def test_a_huge_answer_is_refused(self, pbs_server: SimulatorServer) -> None:
        pbs_server.app.faults.huge = True
        pbs_server.app.faults.huge_bytes = 200_000
        source = PbsSource(pbs_config(pbs_server), max_bytes=64 * 1024, clock=Clock())
        with pytest.raises(SourceProtocolError, match="response on /nodes/localhost/time is larger than"):
            await source.poll()
        await source.aclose()

    async def test_a_wrong_shape_names_the_path(self, pve_server: SimulatorServer) -> None:
        pve_server.app.faults.wrong_shape = True
        source = PveSource(pve_config(pve_server), clock=Clock())
        with pytest.raises(SourceProtocolError, match="unexpected payload on /cluster/resources: no 'data' member"):
            await source.poll()
        await source.aclose()

    async def test_a_cluster_without_guests_asks_localhost(self, lab: ProxmoxLab, pve_server: SimulatorServer) -> None:
        lab.guests.clear()
        source = PveSource(pve_config(pve_server), clock=Clock())
        obs = await source.poll()
        await source.aclose()
        assert obs.targets == () and obs.timezone == "Europe/Madrid"
        assert pve_server.app.requests.counts["/api2/json/nodes/localhost/time"] == 1

    async def test_a_down_server_is_unreachable(self, pbs_server: SimulatorServer) -> None:
        pbs_server.app.faults.down = True
        source = PbsSource(pbs_config(pbs_server), clock=Clock())
        with pytest.raises(SourceUnreachable, match="HTTP 503"):
            await source.poll()
        await source.aclose()

    async def test_a_stopped_server_is_unreachable(self, lab: ProxmoxLab) -> None:
        app = create_pbs_app(lab, token_id="monitor@pbs!glance", token_secret=PBS_SECRET)
        server = SimulatorServer(app).start()
        config = pbs_config(server)
        server.stop()
        source = PbsSource(config, clock=Clock())
        with pytest.raises(SourceUnreachable, match="cannot connect"):
            await source.poll()
        await source.aclose()

    async def test_a_slow_server_times_out(self, pve_server: SimulatorServer) -> None:
        pve_server.app.faults.slow_seconds = 1.5
        source = PveSource(pve_config(pve_server, timeout="0.5s"), clock=Clock())
        with pytest.raises(SourceTimeout, match="no answer within the timeout on /cluster/resources"):
            await source.poll()
        await source.aclose()

    async def test_faults_can_be_switched_off_while_running(self, pbs_server: SimulatorServer) -> None:
        source = PbsSource(pbs_config(pbs_server), clock=Clock())
        pbs_server.app.faults.down = True
        with pytest.raises(SourceUnreachable):
            await source.poll()
        pbs_server.app.faults.down = False
        obs = await source.poll()
        await source.aclose()
        assert len(obs.targets) == 10
