"""Fetches call recordings from the PBX host into the product's storage, with retries.

Every recording the call log knows has a row (pending → fetched | failed); the fetcher works
through due rows, so a restart resumes and a file that is not there yet is tried again later
instead of being forgotten. A row is due once its call has ended (MixMonitor closes the file at
hang-up); a call whose end was never seen (callcenter stopped during it) is fetched once its file
has stopped growing. Two ways to reach the files: a mounted folder (NFS/SMB/sshfs of the PBX's
monitor folder) or SFTP with asyncssh. Each file is fetched on its own task with its own time
limit, so one failing or hanging file delays no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from callcenter.config import RecordingsConfig
from callcenter.store.base import Store

log = logging.getLogger(__name__)

# MixMonitor finishes writing the file when the call hangs up: give it a moment.
FIRST_DELAY = 2.0
# Unanswered SSH keepalives before the connection counts as dead.
KEEPALIVE_COUNT_MAX = 3


class FetchError(Exception):
    pass


def _later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


class RecordingFetcher:
    def __init__(self, store: Store, config: RecordingsConfig, storage: Path, *,
                 poll_seconds: float = 2.0) -> None:
        self._store = store
        self._config = config
        self.storage = storage
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max(1, config.parallel_fetches))
        self._inflight: dict[int, asyncio.Task[bool]] = {}

    async def start(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="recording-fetcher")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()
            try:
                await self.start_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording fetcher round failed")

    async def fetch_due(self) -> int:
        """One round over the due recordings, waited for; returns how many were fetched."""
        tasks = await self.start_due()
        return sum(await asyncio.gather(*tasks))

    async def start_due(self) -> list[asyncio.Task[bool]]:
        """Starts one task per due recording not being fetched already, and returns them
        (each ends True when its file was fetched)."""
        started = []
        for rec in await self._store.due_recordings():
            rec_id = rec["id"]
            if rec_id in self._inflight:
                continue
            # Not due while this try runs (it sets its own next time), so files in flight
            # never fill the round's batch and keep the others waiting.
            await self._store.update_recording(
                rec_id, next_try_at=_later(self._config.fetch_timeout))
            task = asyncio.create_task(self._one(rec), name=f"recording-{rec_id}")
            self._inflight[rec_id] = task
            task.add_done_callback(lambda t, rid=rec_id: self._finished(rid, t))
            started.append(task)
        return started

    def _finished(self, rec_id: int, task: asyncio.Task[bool]) -> None:
        self._inflight.pop(rec_id, None)
        if not task.cancelled() and task.exception() is not None:
            # The store failed while noting the outcome: the try is repeated when due.
            log.error("recording %d: %s", rec_id, task.exception())

    async def _one(self, rec: dict[str, Any]) -> bool:
        limit = self._config.fetch_timeout
        async with self._slots:
            try:
                async with asyncio.timeout(limit):
                    result = await self._settled_fetch(rec)
            except TimeoutError:
                await self._failed(rec, f"not fetched within {limit:g} s")
                return False
            except FetchError as exc:
                await self._failed(rec, str(exc))
                return False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug on one file must not stop the others
                log.exception("recording %s: fetch failed", rec["pbx_path"])
                await self._failed(rec, f"unexpected error: {type(exc).__name__}")
                return False
        if result is None:
            return False
        local, size = result
        await self._store.update_recording(rec["id"], state="fetched", local_path=str(local),
                                           size=size, last_error=None)
        return True

    async def _settled_fetch(self, rec: dict[str, Any]) -> tuple[Path, int] | None:
        """The file, fetched; None while a recording whose call end was not seen is still
        growing (its size is noted and checked again settle_seconds later)."""
        if not rec.get("until_stable"):
            return await self._fetch(rec)
        size = await self._size(rec["pbx_path"])
        if size == rec["seen_size"]:
            local, fetched = await self._fetch(rec)
            if fetched == size:
                return local, fetched
            local.unlink(missing_ok=True)  # it grew while being copied
            size = fetched
        log.info("recording %s of call %s (end not seen) is %d bytes; checking again in %g s",
                 rec["pbx_path"], rec["call_id"], size, self._config.settle_seconds)
        await self._store.update_recording(rec["id"], seen_size=size,
                                           next_try_at=_later(self._config.settle_seconds))
        return None

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
        await self._store.update_recording(rec["id"], attempts=attempts, last_error=error,
                                           next_try_at=_later(delay))

    def _target(self, rec: dict[str, Any]) -> Path:
        name = PurePosixPath(rec["pbx_path"]).name
        if not name or name in {".", ".."}:
            raise FetchError(f"recording path {rec['pbx_path']!r} has no file name")
        folder = hashlib.sha1(rec["call_id"].encode()).hexdigest()[:16]
        return self.storage / folder / name

    async def _fetch(self, rec: dict[str, Any]) -> tuple[Path, int]:
        target = self._target(rec)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Its own name per try: a try abandoned at its time limit may still be writing.
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            if self._config.fetch == "sftp":
                await self._fetch_sftp(rec["pbx_path"], partial)
            else:
                await asyncio.to_thread(self._copy_mounted, rec["pbx_path"], partial)
            os.replace(partial, target)  # a half-copied file is never served
        finally:
            partial.unlink(missing_ok=True)
        return target, target.stat().st_size

    async def _size(self, pbx_path: str) -> int:
        if self._config.fetch == "sftp":
            path = self._sftp_path(pbx_path)
            async with self._sftp() as sftp:
                try:
                    attrs = await sftp.stat(str(path))
                except Exception as exc:
                    raise self._sftp_error(exc, path) from None
            return int(attrs.size or 0)
        return await asyncio.to_thread(self._stat_mounted, pbx_path)

    def _mounted_path(self, pbx_path: str) -> Path:
        pbx_root = PurePosixPath(self._config.pbx_path)
        path = PurePosixPath(pbx_path)
        if not path.is_relative_to(pbx_root) or ".." in path.parts:
            raise FetchError(f"{pbx_path} is outside the PBX recording folder {pbx_root}")
        return Path(self._config.mount_path) / path.relative_to(pbx_root)

    def _stat_mounted(self, pbx_path: str) -> int:
        source = self._mounted_path(pbx_path)
        try:
            return source.stat().st_size
        except FileNotFoundError:
            raise FetchError(f"{source} does not exist (yet)") from None
        except OSError as exc:
            raise FetchError(f"{source}: {exc.strerror or exc}") from None

    def _copy_mounted(self, pbx_path: str, partial: Path) -> None:
        source = self._mounted_path(pbx_path)
        try:
            shutil.copyfile(source, partial)
        except FileNotFoundError:
            raise FetchError(f"{source} does not exist (yet)") from None
        except OSError as exc:
            raise FetchError(f"{source}: {exc.strerror or exc}") from None

    def _sftp_path(self, pbx_path: str) -> PurePosixPath:
        cfg = self._config
        path = PurePosixPath(pbx_path)
        if not path.is_relative_to(PurePosixPath(cfg.pbx_path)) or ".." in path.parts:
            raise FetchError(f"{pbx_path} is outside the PBX recording folder {cfg.pbx_path}")
        return path

    @contextlib.asynccontextmanager
    async def _sftp(self) -> AsyncIterator[Any]:
        """One SSH connection and SFTP session (per file: a stuck one holds up nothing else)."""
        import asyncssh

        cfg = self._config
        options: dict[str, Any] = {
            "username": cfg.sftp_username or None,
            "connect_timeout": cfg.sftp_connect_timeout,
            "keepalive_interval": cfg.sftp_keepalive_seconds,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        }
        if cfg.sftp_password:
            options["password"] = cfg.sftp_password
        if cfg.sftp_known_hosts:
            options["known_hosts"] = cfg.sftp_known_hosts
        where = f"sftp {cfg.sftp_host}:{cfg.sftp_port}"
        try:
            conn = await asyncssh.connect(cfg.sftp_host, cfg.sftp_port, **options)
        except TimeoutError:
            raise FetchError(f"{where}: no SSH login within {cfg.sftp_connect_timeout:g} s"
                             ) from None
        except (OSError, asyncssh.Error) as exc:
            # The message of asyncssh errors never contains the password.
            raise FetchError(f"{where}: {exc}") from None
        try:
            try:
                sftp = await conn.start_sftp_client()
            except (OSError, asyncssh.Error) as exc:
                raise FetchError(f"{where}: {exc}") from None
            try:
                yield sftp
            finally:
                sftp.exit()  # not `async with`: its exit waits for a peer that may be stuck
        finally:
            conn.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), 5)

    def _sftp_error(self, exc: Exception, path: PurePosixPath) -> Exception:
        import asyncssh

        cfg = self._config
        if isinstance(exc, asyncssh.SFTPNoSuchFile):
            return FetchError(f"sftp://{cfg.sftp_host}{path} does not exist (yet)")
        if isinstance(exc, OSError | asyncssh.Error):
            return FetchError(f"sftp {cfg.sftp_host}:{cfg.sftp_port}: {exc}")
        return exc

    async def _fetch_sftp(self, pbx_path: str, partial: Path) -> None:
        path = self._sftp_path(pbx_path)
        async with self._sftp() as sftp:
            try:
                await sftp.get(str(path), str(partial))
            except Exception as exc:
                raise self._sftp_error(exc, path) from None
