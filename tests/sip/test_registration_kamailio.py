"""REGISTER against a real kamailio 5.6: success, wrong password, 403, 407, refresh, restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sip.digest import DigestClient
from sip.endpoint import SipEndpoint
from sip.registration import Registration, RegistrationStatus, RegProblem, RegState
from tests.sip.kamailio import Kamailio, KamailioConfig

WAIT = 20.0  # an upper bound for a state to come, never a sleep


@pytest.fixture
def kam_config() -> KamailioConfig:
    return KamailioConfig(users={"100": "secret100", "101": "secret101"}, forbidden={"403"})


@pytest.fixture
def kamailio(kam_config: KamailioConfig, tmp_path: Path) -> Iterator[Kamailio]:
    with Kamailio(kam_config, tmp_path / "kamailio") as k:
        yield k


@pytest.fixture(params=["UDP", "TCP"])
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[SipEndpoint]:
    ep = SipEndpoint(request.param, t1=0.05)
    async with ep:
        yield ep


def registrar(k: Kamailio, ep: SipEndpoint) -> tuple[str, tuple[str, int]]:
    dest = k.tcp if ep.transport_name == "TCP" else k.udp
    return f"sip:127.0.0.1:{dest[1]}", dest


def make(k: Kamailio, ep: SipEndpoint, user: str, password: str, **kw: object) -> Registration:
    uri, dest = registrar(k, ep)
    return Registration(
        ep,
        registrar=uri,
        user=user,
        password=password,
        domain="127.0.0.1",
        dest=dest,
        backoff_min=0.05,
        backoff_max=0.3,
        **kw,  # type: ignore[arg-type]
    )


async def until(
    reg: Registration, state: RegState, after: int = 0, wait: float = WAIT
) -> RegistrationStatus:
    """The first status in ``state`` once ``after`` earlier ones of it were seen."""
    seen = 0
    async with asyncio.timeout(wait):
        async for status in reg.changes():
            if status.state is state:
                if seen >= after:
                    return status
                seen += 1
    raise AssertionError("registration stopped")


async def bindings(k: Kamailio, ep: SipEndpoint, user: str, password: str) -> list[str]:
    """The Contacts kamailio holds for ``user`` (a REGISTER without Contact lists them)."""
    uri, dest = registrar(k, ep)
    digest = DigestClient(user, password)
    call_id = "query-" + user
    resp = None
    for cseq in (1, 2):
        req = ep.new_request(
            "REGISTER", uri, f"<sip:{user}@127.0.0.1>", f"<sip:{user}@127.0.0.1>",
            call_id=call_id, cseq=cseq,
        )  # fmt: skip
        req.headers.remove("Contact")
        if resp is not None:
            digest.authorize(req, resp)
        resp = await ep.request(req, dest)
        if resp.status == 200:
            return resp.headers.get_list("Contact")
    raise AssertionError(f"query answered {resp and resp.status}")


async def test_registers_and_unregisters_on_stop(kamailio: Kamailio, endpoint: SipEndpoint) -> None:
    reg = make(kamailio, endpoint, "100", "secret100", expires=120)
    await reg.start()
    status = await until(reg, RegState.REGISTERED)
    assert status.expires == 120 and status.reason == "registered for 120 s"
    held = await bindings(kamailio, endpoint, "100", "secret100")
    assert len(held) == 1 and f":{endpoint.local_address[1]}" in held[0]
    await reg.stop()
    assert reg.status.state is RegState.STOPPED
    assert await bindings(kamailio, endpoint, "100", "secret100") == []


async def test_wrong_password_is_a_clear_error_without_a_loop(
    kamailio: Kamailio, endpoint: SipEndpoint
) -> None:
    reg = make(kamailio, endpoint, "100", "not-the-password")
    await reg.start()
    status = await until(reg, RegState.REFUSED)
    assert status.reason == "wrong user or password"
    assert status.problem is RegProblem.WRONG_CREDENTIALS and status.status_code == 401
    assert status.retry_in == 600.0
    assert endpoint.transport.stats.sent == 2  # the REGISTER and one answer to its challenge
    assert "not-the-password" not in repr(reg.status)
    await reg.stop()


async def test_unknown_user_looks_like_a_wrong_password(
    kamailio: Kamailio, endpoint: SipEndpoint
) -> None:
    status = await make(kamailio, endpoint, "999", "x").register_once()
    assert status.state is RegState.REFUSED and status.reason == "wrong user or password"


async def test_403_is_a_clear_error_without_a_retry_storm(
    kamailio: Kamailio, endpoint: SipEndpoint
) -> None:
    reg = make(kamailio, endpoint, "403", "whatever", refused_retry=None)
    await reg.start()
    status = await until(reg, RegState.REFUSED)
    assert status.reason == "registrar refused (403 Forbidden)"
    assert status.problem is RegProblem.FORBIDDEN and status.retry_in is None
    assert reg._task is not None
    await asyncio.wait_for(reg._task, WAIT)  # gave up: the task ended by itself
    assert endpoint.transport.stats.sent == 1
    await reg.stop()


@pytest.mark.parametrize(
    "kam_config", [KamailioConfig(users={"100": "secret100"}, challenge="proxy")]
)
async def test_407_challenge_is_answered(kamailio: Kamailio, endpoint: SipEndpoint) -> None:
    status = await make(kamailio, endpoint, "100", "secret100").register_once()
    assert status.state is RegState.REGISTERED


async def test_refresh_before_expiry(kamailio: Kamailio, endpoint: SipEndpoint) -> None:
    reg = make(kamailio, endpoint, "100", "secret100", expires=2)
    await reg.start()
    first = await until(reg, RegState.REGISTERED)
    assert first.expires == 2 and first.retry_in == 1.0
    await until(reg, RegState.REGISTERED, after=1)  # the refresh
    assert reg.attempts >= 2
    assert len(await bindings(kamailio, endpoint, "100", "secret100")) == 1
    await reg.stop()


async def test_registration_comes_back_after_kamailio_restarts(
    kamailio: Kamailio, endpoint: SipEndpoint
) -> None:
    reg = make(kamailio, endpoint, "100", "secret100", expires=2)
    await reg.start()
    await until(reg, RegState.REGISTERED)
    await asyncio.to_thread(kamailio.stop)
    down = await until(reg, RegState.FAILED)
    assert down.problem is RegProblem.UNREACHABLE
    assert down.reason.startswith("registrar unreachable")
    await asyncio.to_thread(kamailio.start)
    back = await until(reg, RegState.REGISTERED)
    assert back.expires == 2
    assert len(await bindings(kamailio, endpoint, "100", "secret100")) == 1
    await reg.stop()


@pytest.mark.parametrize(
    "kam_config",
    [
        KamailioConfig(
            users={"100": "secret100"},
            min_expires=30,
            modparams=['modparam("registrar", "min_expires_mode", 1)'],
        )
    ],
)
async def test_interval_too_brief_is_retried_with_min_expires(
    kamailio: Kamailio, endpoint: SipEndpoint
) -> None:
    reg = make(kamailio, endpoint, "100", "secret100", expires=5)
    status = await reg.register_once()
    assert status.state is RegState.REGISTERED and status.expires == 30
    assert reg.expires == 30
    await reg.stop()


@pytest.mark.parametrize("kam_config", [KamailioConfig(users={"100": "secret100"}, tcp_lifetime=1)])
async def test_tcp_connection_closed_by_the_registrar_registers_again_at_once(
    kamailio: Kamailio,
) -> None:
    async with SipEndpoint("TCP", t1=0.05) as ep:
        reg = make(kamailio, ep, "100", "secret100", expires=3600)
        await reg.start()
        first = await until(reg, RegState.REGISTERED)
        assert first.retry_in == 1800  # no refresh due for half an hour
        # kamailio drops the idle connection ~10 s later (its connection timer is coarse), and
        # the drop alone makes us register again
        await until(reg, RegState.REGISTERED, after=1, wait=60)
        assert reg.attempts >= 2
        await reg.stop()
