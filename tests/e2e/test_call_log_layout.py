"""The call log fits the screen: long names, numbers and recordings at 1366×768 and 1920×1080.

Screenshots of both go to the test's tmp folder (for a person to look at); the checks are made
in the page: no cell's content sticks out of its cell or the table out of its panel, no word
of a name is broken across lines ("Serge / y / Kuzne / tsov") and no number wraps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from callcenter.store.base import ClientInput
from tests.e2e.server import LiveServer

SIZES = [(1366, 768), (1920, 1080)]
CALLS = 12

# Everything the page can measure about the log, in one go: [] when it fits.
LAYOUT_PROBLEMS = r"""
() => {
  const problems = [];
  const table = document.querySelector('[data-role=call-log] table');
  const panel = table.closest('.panel');
  const box = (el) => el.getBoundingClientRect();
  if (box(table).right > box(panel).right + 1 || panel.scrollWidth > panel.clientWidth + 1) {
    problems.push(`table ${box(table).right} wider than its panel ${box(panel).right}`);
  }
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth + 1) {
    problems.push('the page scrolls sideways');
  }
  for (const td of table.querySelectorAll('td')) {
    const cell = box(td);
    if (td.scrollWidth > td.clientWidth + 1) {
      problems.push(`cell ${td.cellIndex} overflows (${td.scrollWidth} > ${td.clientWidth})`);
    }
    for (const el of td.querySelectorAll('*')) {
      const r = box(el);
      if (r.width && (r.left < cell.left - 1 || r.right > cell.right + 1)) {
        problems.push(`${el.tagName.toLowerCase()} in cell ${td.cellIndex} sticks out`
          + ` (${r.left}..${r.right} of ${cell.left}..${cell.right})`);
      }
    }
  }
  for (const player of table.querySelectorAll('audio')) {
    const width = box(player).width;
    if (width < 140) problems.push(`a player squeezed to ${width} px hides its play button`);
  }
  // Names wrap between words (or after a hyphen), never inside one: every piece of a word
  // lies on one line. A number does not wrap at all.
  for (const el of table.querySelectorAll('.caller-name, td a, .phone')) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/[^\s-]+-?/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (tops.size > 1) problems.push(`"${m[0]}" of "${el.textContent}" is broken`);
      }
    }
    if (el.classList.contains('phone')
        && box(el).height > 1.5 * parseFloat(getComputedStyle(el).lineHeight)) {
      problems.push(`the number "${el.textContent}" wraps`);
    }
  }
  return problems;
}
"""


def fill_log(server: LiveServer, tmp_path: Path) -> list[str]:
    store = server.services.store
    users = {u.login: u for u in server.call(store.list_users)}
    wav = tmp_path / "recordings" / "x.wav"
    wav.parent.mkdir()
    wav.write_bytes(b"RIFF")
    ids = []
    for i in range(CALLS):
        client = server.call(store.create_client, ClientInput(
            f"Kuznetsov Logistics International Holding Company {i}",
            manager_id=users["maria"].id))
        call_id = f"office:layout.{i}"
        server.call(store.upsert_call, {
            "id": call_id, "line": "office", "direction": "inbound",
            "caller_raw": f"+7916123456{i % 10}", "caller_e164": f"+7916123456{i % 10}",
            "caller_name": f"Sergey Kuznetsov-Rimsky Vladimirovich {i}",
            "client_id": client.id, "state": "answered" if i % 3 else "missed",
            "reason": None if i % 3 else "abandoned",
            "answered_by_ext": "102", "answered_by_user": users["maria"].id,
            "ringing_at": f"2026-11-22T10:{i:02d}:00+00:00",
            "answered_at": f"2026-11-22T10:{i:02d}:12+00:00",
            "ended_at": f"2026-11-22T10:{i + 1:02d}:30+00:00",
            "ring_seconds": 12.0, "talk_seconds": 3725.0, "rang": ["101", "102"],
        })
        for n in range(1 + i % 2):  # some calls have two recordings
            server.call(store.add_recording, call_id, f"/var/spool/asterisk/monitor/{i}-{n}.wav")
        for rec in server.call(store.get_call, call_id)["recordings"]:
            server.call(lambda r=rec: store.update_recording(
                r["id"], state="fetched", local_path=str(wav), size=4))
        ids.append(call_id)
    return ids


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_call_log_fits_the_screen(server: LiveServer, console, tmp_path: Path, width: int,
                                  height: int) -> None:
    ids = fill_log(server, tmp_path)
    tab = console(server, "admin")
    page: Any = tab.page
    page.set_viewport_size({"width": width, "height": height})
    page.goto(server.url + "/calls")
    log = page.locator("[data-role=call-log]")
    expect(log.locator("tr.call-row")).to_have_count(len(ids))
    expect(log.locator("audio.player")).to_have_count(CALLS + CALLS // 2)
    shot = tmp_path / f"call-log-{width}x{height}.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert page.evaluate(LAYOUT_PROBLEMS) == []
