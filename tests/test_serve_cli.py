"""``callcenter serve``: the options it gives uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn

from callcenter.cli import main
from ui.hub import MAX_CLIENT_MESSAGE


def test_serve_caps_websocket_messages_at_what_the_hub_accepts(tmp_path: Path,
                                                               monkeypatch) -> None:
    """uvicorn's default lets a client send 16 MiB frames the hub then drops unread."""
    cfg = tmp_path / "cc.toml"
    cfg.write_text('[store]\ndata_dir = "var"\n[server]\nsecret_key = "' + "k" * 32 + '"\n')
    given: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: given.update(kw))
    assert main(["serve", "--config", str(cfg)]) == 0
    # the hub counts characters; UTF-8 takes up to 4 bytes for one
    assert given["ws_max_size"] == 4 * MAX_CLIENT_MESSAGE < 1 << 20
    assert given["ws"] == "ui.ws_frames:FramingProtocol"  # websockets-sansio + pre-framed writes
