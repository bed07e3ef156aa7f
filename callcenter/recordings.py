"""Fetches call recordings from the PBX host into the product's storage, with retries.

Every recording the call log knows has a row (pending → fetched | failed); the fetcher works
through due rows, so a restart resumes and a file that is not there yet is tried again later
instead of being forgotten. A row is due once its call has ended (MixMonitor closes the file at
hang-up); a call whose end was never seen (callcenter stopped during it) is fetched once its file
has stopped growing. Two ways to reach the files: a mounted folder (NFS/SMB/sshfs of the PBX's
monitor folder) or SFTP with asyncssh. Each file is fetched on its own task with its own time
limit, so one failing or hanging file delays no other; copies from a mounted folder run on
daemon threads, so a read stuck on a dead NFS server keeps its slot but never holds up a stop.
A file whose size changes while it is copied is not final yet.

Files are read only under two roots: the recording folder (``pbx_path``, MixMonitor, Record())
and the voicemail spool (``voicemail_pbx_path``, VoiceMail()'s ``VM_MESSAGEFILE``); a path with
``..``, outside both, or whose resolved file (a symlink) lies outside its root is refused.
``VM_MESSAGEFILE`` names a message without its extension: the fetcher takes the first of
``voicemail_format``, ``wav``, ``WAV`` (the ``wav49`` format) and ``gsm`` that exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from callcenter.config import RecordingsConfig
from callcenter.store.base import Store

log = logging.getLogger(__name__)

# Unanswered SSH keepalives before the connection counts as dead.
KEEPALIVE_COUNT_MAX = 3
# How long a closed SSH connection may take to say goodbye before it is dropped.
SSH_CLOSE_SECONDS = 5.0
# A WAV file's header alone: MixMonitor has opened the file but written no audio yet.
WAV_HEADER = 44
# The extensions app_voicemail writes its formats with (wav49 is saved as .WAV).
VOICEMAIL_SUFFIXES = ("wav", "WAV", "gsm")


class FetchError(Exception):
    pass


class _Missing(FetchError):
    """The file is not there (yet)."""


class _StillWritten(Exception):
    """The file changed while it was copied: not finished yet (not a failed attempt)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"still being written ({size} bytes)")
        self.size = size


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a recording may be on the PBX: the paths to try, in order, and their root."""

    candidates: tuple[PurePosixPath, ...]
    root: PurePosixPath  # as the PBX names it
    mount: Path  # the same folder mounted here


def _later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _on_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """``fn(*args)`` on a thread of its own, as a future of the loop. Not the default
    executor: a read stuck on a hard-mounted NFS never returns, and asyncio.run() joins the
    default executor's threads at exit; a daemon thread is simply left behind."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def resolve(result: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)

    def run() -> None:
        try:
            result, exc = fn(*args), None
        except BaseException as error:  # handed to the loop, which raises it in the waiter
            result, exc = None, error
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(resolve, result, exc)

    threading.Thread(target=run, name="recording-copy", daemon=True).start()
    return future


class RecordingFetcher:
    def __init__(self, store: Store, config: RecordingsConfig, storage: Path, *,
                 poll_seconds: float = 2.0) -> None:
        self._store = store
        self._config = config
        self.storage = storage
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._parallel = max(1, config.parallel_fetches)
        # A recording id is in one of these while it holds one of the parallel_fetches slots:
        # its task runs, or the task gave up (time limit) but its blocking copy still runs.
        self._inflight: dict[int, asyncio.Task[bool]] = {}
        self._held: dict[int, asyncio.Future[Any]] = {}
        # Blocking file operations running now, per recording, with the partial file they
        # write (removed once an abandoned copy finally returns).
        self._threads: dict[int, tuple[asyncio.Future[Any], Path | None]] = {}

    async def start(self) -> None:
        await asyncio.to_thread(self._clean_storage)
        self._task = asyncio.create_task(self._run(), name="recording-fetcher")

    def _clean_storage(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        # Partial files of tries cut short by a stop or a crash: never served, never resumed.
        for stray in self.storage.glob("*/.*.part"):
            stray.unlink(missing_ok=True)

    async def stop(self) -> None:
        """Cancels the fetches in flight without waiting for copies stuck in a blocking read
        (they run on daemon threads); their recordings are due again at the next start."""
        cut_short = list(self._inflight)
        tasks = [t for t in (self._task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        for rec_id in cut_short:  # their lease would delay them by fetch_timeout
            try:
                await self._store.update_recording(rec_id, next_try_at=None)
            except Exception as exc:
                log.warning("recording %d: could not end its lease at stop: %s", rec_id, exc)

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
        """One round over the due recordings (as many as there are free slots), waited for;
        returns how many were fetched."""
        tasks = await self.start_due()
        return sum(await asyncio.gather(*tasks))

    def _free_slots(self) -> int:
        return self._parallel - len(self._inflight) - len(self._held)

    async def start_due(self) -> list[asyncio.Task[bool]]:
        """Starts a task per due recording not being fetched already, as many as there are
        free slots, and returns them (each ends True when its file was fetched)."""
        if self._free_slots() <= 0:
            return []
        busy = len(self._inflight) + len(self._held)  # may still look due: skipped below
        due = await self._store.due_recordings(limit=self._free_slots() + busy)
        started = []
        # No await from here on: a round running at the same time sees these in _inflight.
        for rec in due:
            rec_id = rec["id"]
            if rec_id in self._inflight or rec_id in self._held:
                continue
            if self._free_slots() <= 0:
                break
            task = asyncio.create_task(self._one(rec), name=f"recording-{rec_id}")
            self._inflight[rec_id] = task
            task.add_done_callback(lambda t, rid=rec_id: self._finished(rid, t))
            started.append(task)
        return started

    def _finished(self, rec_id: int, task: asyncio.Task[bool]) -> None:
        self._inflight.pop(rec_id, None)
        running = self._threads.get(rec_id)
        if running is not None:
            # Given up at its time limit, but the copy is stuck in a read: it keeps its slot
            # until the read returns, so stuck reads cannot pile up threads.
            self._held[rec_id] = running[0]
        else:
            self._wake.set()  # a slot came free
        if not task.cancelled() and task.exception() is not None:
            # The store failed while noting the outcome: the try is repeated when due.
            log.error("recording %d: %s", rec_id, task.exception())

    async def _blocking(self, rec_id: int, fn: Callable[..., Any], *args: Any,
                        partial: Path | None = None) -> Any:
        """A blocking file operation of one recording's try, on a daemon thread. Cancelling
        the try (time limit, stop) does not wait for it: see _finished and _thread_done."""
        future = _on_daemon_thread(fn, *args)
        self._threads[rec_id] = (future, partial)
        future.add_done_callback(lambda f: self._thread_done(rec_id, f))
        return await asyncio.shield(future)

    def _thread_done(self, rec_id: int, future: asyncio.Future[Any]) -> None:
        _, partial = self._threads.pop(rec_id, (None, None))
        if not future.cancelled():
            future.exception()  # retrieved: an abandoned copy's error is not worth a warning
        if self._held.pop(rec_id, None) is not None:
            if partial is not None:
                # Its try is long over: nobody else removes what the copy wrote (rare: only
                # after a time limit; a local unlink).
                partial.unlink(missing_ok=True)
            self._wake.set()

    async def _one(self, rec: dict[str, Any]) -> bool:
        limit = self._config.fetch_timeout
        # The lease, from the moment the slot is taken: not due again while this try runs
        # (the try sets its own next time).
        await self._store.update_recording(rec["id"], next_try_at=_later(limit))
        try:
            async with asyncio.timeout(limit):
                result = await self._settled_fetch(rec)
        except TimeoutError:
            await self._failed(rec, f"not fetched within {limit:g} s")
            return False
        except _Missing as exc:
            await self._failed(rec, str(exc), missing=True)
            return False
        except FetchError as exc:
            await self._failed(rec, str(exc))
            return False
        except _StillWritten as exc:
            log.info("recording %s of call %s: %s; trying again later", rec["pbx_path"],
                     rec["call_id"], exc)
            await self._store.update_recording(
                rec["id"], last_error=str(exc), next_try_at=_later(self._config.retry_seconds))
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
        size = await self._size(rec)
        if size <= WAV_HEADER:
            # MixMonitor opened it and wrote no audio (yet): a size that stays put says
            # nothing, and an attempt is counted so that it ends one day.
            raise FetchError(f"{rec['pbx_path']} holds no audio yet ({size} bytes)")
        if size == rec["seen_size"]:
            try:
                return await self._fetch(rec)
            except _StillWritten as exc:
                size = exc.size
        log.info("recording %s of call %s (end not seen) is %d bytes; checking again in %g s",
                 rec["pbx_path"], rec["call_id"], size, self._config.settle_seconds)
        await self._store.update_recording(rec["id"], seen_size=size,
                                           next_try_at=_later(self._config.settle_seconds))
        return None

    async def _failed(self, rec: dict[str, Any], error: str, *, missing: bool = False) -> None:
        attempts = rec["attempts"] + 1
        if attempts >= self._config.max_attempts and missing and self._is_voicemail(rec):
            # Not an error: VoiceMail() kept no file (its owner deleted it on the phone, or the
            # spool is ODBC/IMAP storage that removes it once stored).
            log.info("voicemail %s of call %s: no message on the PBX after %d attempts",
                     rec["pbx_path"], rec["call_id"], attempts)
            await self._store.update_recording(rec["id"], state="failed", attempts=attempts,
                                               last_error=f"no message: {error}")
            return
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

    def _target(self, rec: dict[str, Any], name: str) -> Path:
        """The stored file of a recording whose file on the PBX is called ``name``."""
        if not name or name in {".", ".."}:
            raise FetchError(f"recording path {rec['pbx_path']!r} has no file name")
        # Two recordings of one call may share a file name (two folders on the PBX).
        return self._folder(rec) / f"{rec['id']}-{name}"

    def _folder(self, rec: dict[str, Any]) -> Path:
        return self.storage / hashlib.sha1(rec["call_id"].encode()).hexdigest()[:16]

    async def _fetch(self, rec: dict[str, Any]) -> tuple[Path, int]:
        """The file copied whole; _StillWritten if its size changed during the copy."""
        folder = self._folder(rec)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        # Its own name per try: a try abandoned at its time limit may still be writing.
        partial = folder / f".{rec['id']}.{secrets.token_hex(4)}.part"
        try:
            if self._config.fetch == "sftp":
                before, after, copied, name = await self._fetch_sftp(rec["pbx_path"], partial)
            else:
                before, after, copied, name = await self._blocking(
                    rec["id"], self._copy_mounted, rec["pbx_path"], partial, partial=partial)
            if not before == after == copied:
                raise _StillWritten(after)
            target = self._target(rec, name)
            await asyncio.to_thread(os.replace, partial, target)  # never a half-copied file
        finally:
            running = self._threads.get(rec["id"])
            if running is None or running[0].done():  # else the stuck copy's end removes it
                await asyncio.to_thread(partial.unlink, missing_ok=True)
        return target, copied

    async def _size(self, rec: dict[str, Any]) -> int:
        pbx_path = rec["pbx_path"]
        if self._config.fetch == "sftp":
            self._source(pbx_path)  # refused before any connection
            async with self._sftp() as sftp:
                _, _, size = await self._sftp_source(sftp, pbx_path)
            return size
        return int(await self._blocking(rec["id"], self._stat_mounted, pbx_path))

    def _is_voicemail(self, rec: dict[str, Any]) -> bool:
        path = PurePosixPath(rec["pbx_path"])
        return path.is_relative_to(PurePosixPath(self._config.voicemail_pbx_path))

    def _source(self, pbx_path: str) -> _Source:
        """The root a recording's path lies under, or FetchError (``..``, outside both)."""
        cfg = self._config
        path = PurePosixPath(pbx_path)
        roots = ((cfg.pbx_path, cfg.mount_path, False),
                 (cfg.voicemail_pbx_path, cfg.voicemail_mount_path, True))
        if path.is_absolute() and ".." not in path.parts:
            for pbx_root, mount, voicemail in roots:
                root = PurePosixPath(pbx_root)
                if path == root or not path.is_relative_to(root):
                    continue
                candidates: tuple[PurePosixPath, ...] = (path,)
                if voicemail and not path.suffix:  # VM_MESSAGEFILE: no extension
                    formats = dict.fromkeys((cfg.voicemail_format, *VOICEMAIL_SUFFIXES))
                    candidates = tuple(path.with_name(f"{path.name}.{f}") for f in formats)
                return _Source(candidates, root, Path(mount))
        raise FetchError(f"{pbx_path} is outside the PBX recording folder {cfg.pbx_path}"
                         f" and the voicemail folder {cfg.voicemail_pbx_path}")

    def _mounted_path(self, pbx_path: str) -> tuple[Path, str]:
        """The real file on the mount (the first voicemail format there is) and its name on
        the PBX; a symlink that leads out of its root is refused. Blocking (it looks)."""
        source = self._source(pbx_path)
        found = [(source.mount / c.relative_to(source.root), c.name) for c in source.candidates]
        local, name = next(((p, n) for p, n in found if p.exists()), found[0])
        if not local.exists():
            return local, name  # opening it says "does not exist (yet)"
        real = local.resolve()
        if not real.is_relative_to(source.mount.resolve()):
            raise FetchError(f"{pbx_path} leads out of its folder {source.root}")
        return real, name  # opened by its resolved name: not re-pointed in between

    def _stat_mounted(self, pbx_path: str) -> int:
        source, _ = self._mounted_path(pbx_path)
        try:
            return source.stat().st_size
        except FileNotFoundError:
            raise _Missing(f"{source} does not exist (yet)") from None
        except OSError as exc:
            raise FetchError(f"{source}: {exc.strerror or exc}") from None

    def _copy_mounted(self, pbx_path: str, partial: Path) -> tuple[int, int, int, str]:
        """Copies the file; returns its size before and after, the size copied and the
        file's name on the PBX."""
        source, name = self._mounted_path(pbx_path)
        try:
            before = source.stat().st_size
            with source.open("rb") as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                copied = dst.tell()
            return before, source.stat().st_size, copied, name
        except FileNotFoundError:
            raise _Missing(f"{source} does not exist (yet)") from None
        except OSError as exc:
            raise FetchError(f"{source}: {exc.strerror or exc}") from None

    async def _sftp_source(self, sftp: Any, pbx_path: str) -> tuple[PurePosixPath, str, int]:
        """The real remote file (the first voicemail format there is), its name and size; a
        symlink that leads out of its root is refused."""
        import asyncssh

        source = self._source(pbx_path)
        missing: Exception | None = None
        for candidate in source.candidates:
            try:
                attrs = await sftp.stat(str(candidate))
            except asyncssh.SFTPNoSuchFile as exc:
                missing = exc
                continue
            except Exception as exc:
                raise self._sftp_error(exc, candidate) from None
            try:
                real = PurePosixPath(await sftp.realpath(str(candidate)))
                root = PurePosixPath(await sftp.realpath(str(source.root)))
            except Exception as exc:
                raise self._sftp_error(exc, candidate) from None
            if not real.is_relative_to(root):
                raise FetchError(f"{pbx_path} leads out of its folder {source.root}")
            return real, candidate.name, int(attrs.size or 0)
        assert missing is not None
        raise self._sftp_error(missing, source.candidates[0])

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
            try:
                await asyncio.wait_for(conn.wait_closed(), SSH_CLOSE_SECONDS)
            except TimeoutError:
                conn.abort()  # the peer does not answer the close: drop the TCP connection

    def _sftp_error(self, exc: Exception, path: PurePosixPath) -> Exception:
        import asyncssh

        cfg = self._config
        if isinstance(exc, asyncssh.SFTPNoSuchFile):
            return _Missing(f"sftp://{cfg.sftp_host}{path} does not exist (yet)")
        if isinstance(exc, OSError | asyncssh.Error):
            return FetchError(f"sftp {cfg.sftp_host}:{cfg.sftp_port}: {exc}")
        return exc

    async def _fetch_sftp(self, pbx_path: str, partial: Path) -> tuple[int, int, int, str]:
        """Copies the file; returns its size before and after, the size copied and the
        file's name on the PBX."""
        self._source(pbx_path)  # refused before any connection
        async with self._sftp() as sftp:
            path, name, before = await self._sftp_source(sftp, pbx_path)
            try:
                await sftp.get(str(path), str(partial))
                after = (await sftp.stat(str(path))).size or 0
            except Exception as exc:
                raise self._sftp_error(exc, path) from None
        copied = (await asyncio.to_thread(partial.stat)).st_size
        return before, int(after), copied, name
