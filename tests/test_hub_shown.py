"""The hub's memory of which consoles have shown a call: kept once per call and user, not per
console, with the same result as before for every console."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.config import Config
from tests.e2e.server import with_demo_base
from tests.test_hub import connect, dmitry_call, maria_call, publish, session, start, users


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    app = create_app(config, demo=False)
    with_demo_base(app)
    with TestClient(app) as c:
        yield c


def test_only_a_console_that_showed_the_call_gets_its_end_after_it_stops_matching(
    client: TestClient,
) -> None:
    u = users(client)
    first, second = session(client, "maria"), session(client, "maria")
    call = maria_call(u, "office:77")
    with connect(first) as early:
        start(early)
        ringing = publish(client, call.ringing("101"))
        assert early.receive_json()["seq"] == ringing
        # Maria opens a second console after the pop: it has not shown this call.
        with connect(second) as late:
            start(late)
            call.match = dmitry_call(u).match  # a late caller-ID re-match: now Dmitry's
            end = publish(client, call.ended())
            marker = publish(client, maria_call(u, "office:78").ringing("101"))
            assert [early.receive_json()["seq"], early.receive_json()["seq"]] == [end, marker]
            assert late.receive_json()["seq"] == marker  # the end of a card it never had: no


def test_a_call_is_forgotten_at_its_end_and_at_most_max_tracked_are_remembered(
    client: TestClient,
) -> None:
    u = users(client)
    hub = client.app.state.hub
    hub.max_tracked = 3
    maria = session(client, "maria")
    with connect(maria) as ws:
        start(ws)
        calls = [maria_call(u, f"office:{i}") for i in range(5)]
        for call in calls:
            seq = publish(client, call.ringing("101"))
            assert ws.receive_json()["seq"] == seq
        assert hub.tracked_calls == 3  # calls 2, 3 and 4: the oldest whose end never came left
        for call in (calls[0], calls[4]):
            call.match = dmitry_call(u).match  # no longer Maria's
        publish(client, calls[0].ended())  # forgotten: goes by visibility alone, not to her
        end = publish(client, calls[4].ended())
        assert ws.receive_json()["seq"] == end
        assert hub.tracked_calls == 2  # its end dropped it


def test_a_call_with_a_recent_event_outlives_older_untracked_ones_at_max_tracked(
    client: TestClient,
) -> None:
    u = users(client)
    hub = client.app.state.hub
    hub.max_tracked = 2
    maria = session(client, "maria")
    with connect(maria) as ws:
        start(ws)
        long_call, stuck = maria_call(u, "office:1"), maria_call(u, "office:2")
        for seq in (publish(client, long_call.ringing("101")),
                    publish(client, stuck.ringing("101")),
                    publish(client, long_call.ringing("102"))):  # the long call goes on
            assert ws.receive_json()["seq"] == seq
        newer = publish(client, maria_call(u, "office:3").ringing("101"))
        assert ws.receive_json()["seq"] == newer
        # The stuck call, unheard from longest, made room: the long call is still tracked, so
        # its end after a re-match away from Maria still reaches her console.
        long_call.match = dmitry_call(u).match
        end = publish(client, long_call.ended())
        marker = publish(client, maria_call(u, "office:4").ringing("101"))
        assert ws.receive_json()["seq"] == end  # not the marker first
        assert ws.receive_json()["seq"] == marker
