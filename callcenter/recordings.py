"""Fetches call recordings from the PBX host into the product's storage, with retries.

Every recording the call log knows has a row (pending → fetched | failed); the fetcher works
through due rows, so a restart resumes and a file that is not there yet is tried again later
instead of being forgotten. Two ways to reach the files: a mounted folder (NFS/SMB/sshfs of the
PBX's monitor folder) or SFTP with asyncssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from callcenter.config import RecordingsConfig
from callcenter.store.base import Store

log = logging.getLogger(__name__)

# MixMonitor finishes writing the file when the call hangs up: give it a moment.
FIRST_DELAY = 2.0


class FetchError(Exception):
    pass


class RecordingFetcher:
    def __init__(self, store: Store, config: RecordingsConfig, storage: Path, *,
                 poll_seconds: float = 2.0) -> None:
        self._store = store
        self._config = config
        self.storage = storage
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="recording-fetcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()
            try:
                await self.fetch_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording fetcher round failed")

    async def fetch_due(self) -> int:
        """One round over the due recordings; returns how many were fetched."""
        fetched = 0
        for rec in await self._store.due_recordings():
            try:
                local, size = await self._fetch(rec)
            except FetchError as exc:
                await self._failed(rec, str(exc))
                continue
            await self._store.update_recording(rec["id"], state="fetched",
                                               local_path=str(local), size=size,
                                               last_error=None)
            fetched += 1
        return fetched

    async def _failed(self, rec: dict[str, Any], error: str) -> None:
        attempts = rec["attempts"] + 1
        if attempts >= self._config.max_attempts:
            log.error("recording %s of call %s given up after %d attempts: %s",
                      rec["pbx_path"], rec["call_id"], attempts, error)
            await self._store.update_recording(rec["id"], state="failed", attempts=attempts,
                                               last_error=error)
            return
        delay = self._config.retry_seconds * min(2 ** (attempts - 1), 32)
        log.warning("recording %s not fetched (%s); retry %d in %d s", rec["pbx_path"], error,
                    attempts, delay)
        await self._store.update_recording(
            rec["id"], attempts=attempts, last_error=error,
            next_try_at=datetime.now(UTC) + timedelta(seconds=delay))

    def _target(self, rec: dict[str, Any]) -> Path:
        name = PurePosixPath(rec["pbx_path"]).name
        if not name or name in {".", ".."}:
            raise FetchError(f"recording path {rec['pbx_path']!r} has no file name")
        folder = hashlib.sha1(rec["call_id"].encode()).hexdigest()[:16]
        return self.storage / folder / name

    async def _fetch(self, rec: dict[str, Any]) -> tuple[Path, int]:
        target = self._target(rec)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        if self._config.fetch == "sftp":
            await self._fetch_sftp(rec["pbx_path"], partial)
        else:
            await asyncio.to_thread(self._copy_mounted, rec["pbx_path"], partial)
        os.replace(partial, target)  # a half-copied file is never served
        return target, target.stat().st_size

    def _mounted_path(self, pbx_path: str) -> Path:
        pbx_root = PurePosixPath(self._config.pbx_path)
        path = PurePosixPath(pbx_path)
        if not path.is_relative_to(pbx_root) or ".." in path.parts:
            raise FetchError(f"{pbx_path} is outside the PBX recording folder {pbx_root}")
        return Path(self._config.mount_path) / path.relative_to(pbx_root)

    def _copy_mounted(self, pbx_path: str, partial: Path) -> None:
        source = self._mounted_path(pbx_path)
        try:
            shutil.copyfile(source, partial)
        except FileNotFoundError:
            raise FetchError(f"{source} does not exist (yet)") from None
        except OSError as exc:
            raise FetchError(f"{source}: {exc.strerror or exc}") from None

    async def _fetch_sftp(self, pbx_path: str, partial: Path) -> None:
        import asyncssh

        cfg = self._config
        path = PurePosixPath(pbx_path)
        if not path.is_relative_to(PurePosixPath(cfg.pbx_path)) or ".." in path.parts:
            raise FetchError(f"{pbx_path} is outside the PBX recording folder {cfg.pbx_path}")
        options: dict[str, Any] = {"username": cfg.sftp_username or None}
        if cfg.sftp_password:
            options["password"] = cfg.sftp_password
        if cfg.sftp_known_hosts:
            options["known_hosts"] = cfg.sftp_known_hosts
        try:
            async with asyncssh.connect(cfg.sftp_host, cfg.sftp_port, **options) as conn, \
                    conn.start_sftp_client() as sftp:
                await sftp.get(str(path), str(partial))
        except asyncssh.SFTPNoSuchFile:
            raise FetchError(f"sftp://{cfg.sftp_host}{path} does not exist (yet)") from None
        except (OSError, asyncssh.Error) as exc:
            # The message of asyncssh errors never contains the password.
            raise FetchError(f"sftp {cfg.sftp_host}:{cfg.sftp_port}: {exc}") from None
