"""Received faxes: stored once, matched by caller ID then by the station ID's digits, the
station ID kept as bounded text."""

from __future__ import annotations

import time
from pathlib import Path

from callcenter.faxes.jobs import MAX_STATION_CHARS, clean_station
from callcenter.faxes.ports import FaxReceived
from tests.faxes.fakes import fax_core


def _fax(tmp_path: Path, name: str, caller: str, station: str) -> FaxReceived:
    tiff = tmp_path / name
    tiff.write_bytes(b"II*\x00")
    return FaxReceived("fax", time.time(), tiff, 2, caller, station, True)


async def test_matched_by_caller_id_then_by_station_digits(tmp_path: Path) -> None:
    async with fax_core(tmp_path) as core:
        by_caller = await core.service.receive("fax", _fax(tmp_path, "a.tif", "89161234567", ""))
        assert by_caller["client_name"] == "ООО «Ромашка»"
        assert by_caller["matched_by"] == "caller_id"
        # No caller ID (or an unknown one): the far end's station ID is a number we know.
        by_station = await core.service.receive(
            "fax", _fax(tmp_path, "b.tif", "anonymous", "+7 903 555-66-77 Sokolova"))
        assert by_station["client_name"] == "Olga Sokolova"
        assert by_station["matched_by"] == "station_id"
        nobody = await core.service.receive("fax", _fax(tmp_path, "c.tif", "", "FAX 12"))
        assert nobody["client_id"] is None and nobody["matched_by"] == ""
        history = await core.store.list_interactions(by_station["client_id"])
        assert [i.ref for i in history] == [f"fax-in-{by_station['id']}"]


async def test_a_fax_handed_over_twice_is_stored_once(tmp_path: Path) -> None:
    async with fax_core(tmp_path) as core:
        event = _fax(tmp_path, "same.tif", "+79161234567", "")
        first = await core.service.receive("fax", event)
        again = await core.service.receive("fax", event)
        assert again["id"] == first["id"]
        assert [e.topic for e in core.events].count("fax.received") == 1
        assert len(list((tmp_path / "data" / "faxes" / "inbox").iterdir())) == 1


async def test_station_id_is_bounded_text(tmp_path: Path) -> None:
    hostile = "<img src=x onerror=alert(1)>\x1b[31m\r\n" + "A" * 500
    cleaned = clean_station(hostile)
    assert "\x1b" not in cleaned and "\n" not in cleaned and len(cleaned) == MAX_STATION_CHARS
    async with fax_core(tmp_path) as core:
        row = await core.service.receive("fax", _fax(tmp_path, "x.tif", "", hostile))
        assert row["remote_station"] == cleaned  # stored as text; the console shows text


async def test_a_reused_file_name_with_another_fax_in_it_is_a_new_fax(tmp_path: Path) -> None:
    """ReceiveFAX named by caller ID, a HylaFAX sequence reset: the same name, another fax."""
    async with fax_core(tmp_path) as core:
        first = await core.service.receive("fax", _fax(tmp_path, "in-1.tif", "", ""))
        (tmp_path / "in-1.tif").write_bytes(b"II*\x00second fax")
        second = await core.service.receive(
            "fax", FaxReceived("fax", time.time(), tmp_path / "in-1.tif", 1, "", "", True))
        assert second["id"] != first["id"]
        assert [e.topic for e in core.events].count("fax.received") == 2


async def test_a_fax_whose_file_never_came_is_in_the_inbox_as_file_missing(tmp_path: Path
                                                                            ) -> None:
    async with fax_core(tmp_path) as core:
        event = FaxReceived("fax", time.time(), tmp_path / "gone.tif", 3, "+79161234567",
                            "", True, "SUCCESS")
        row = await core.service.receive("fax", event)
        assert (row["ok"], row["pages"], row["pdf"]) == (0, 3, "")
        assert row["detail"].startswith("file missing")
        assert row["client_name"] == "ООО «Ромашка»"


async def test_caller_id_beats_a_station_id_of_another_client(tmp_path: Path) -> None:
    async with fax_core(tmp_path) as core:
        row = await core.service.receive(
            "fax", _fax(tmp_path, "both.tif", "89161234567", "+7 903 555-66-77"))
        assert (row["client_name"], row["matched_by"]) == ("ООО «Ромашка»", "caller_id")
