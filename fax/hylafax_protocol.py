"""HylaFAX's client protocol (hfaxd, port 4559) over ftplib, blocking: used from a thread.

The protocol is FTP with job commands (JNEW, JPARM, JSUBM, JKILL) and queue listings whose
columns we choose (JOBFMT, RCVFMT). Within one session ``JNEW`` starts from the previous job's
parameters, so every parameter of a job is set explicitly, each time.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import re
import threading
from dataclasses import dataclass
from pathlib import Path

# Columns of LIST sendq/doneq: job id, state letter, "sent:total" pages, "dials:max",
# our job tag (JPARM JOBINFO crm-<job>-<attempt>, %J: found again after a restart), then
# the status text last (it may hold anything, our separator included).
JOB_FORMAT = "%j|%a|%P|%D|%o|%J|%s"
# Columns of LIST recvq: file, pages, "*" while receiving, caller number, error, and the
# sender's TSI last (free text of a stranger: it may hold our separator).
RECEIVE_FORMAT = "%f|%p|%z|%j|%e|%s"
_JOB_ID = re.compile(r"jobid:\s*(\d+)")
_TEMP_FILE = re.compile(r"\(FILE: (\S+?)\)")
_RECVQ_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")  # never "..", no /


class HylaFaxError(Exception):
    pass


class HylaFaxSubmitUnknown(HylaFaxError):
    """JSUBM was sent and its answer never came: the job may be queued (find it by its tag)."""


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    # T suspended, P pending, S sleeping, B blocked, W waiting, R running, D done, F failed
    state: str
    pages_sent: int
    pages_total: int
    dials: int
    owner: str
    status: str  # HylaFAX's reason, in its words
    tag: str = ""  # the job tag (JOBINFO), as we set it


@dataclass(frozen=True, slots=True)
class ReceivedRow:
    name: str  # the file in recvq
    pages: int
    receiving: bool
    caller: str
    station: str
    error: str


def _pair(text: str) -> tuple[int, int]:
    left, _, right = text.strip().partition(":")
    try:
        return int(left or 0), int(right or 0)
    except ValueError:
        return 0, 0


def parse_job(line: str) -> JobRow | None:
    parts = line.split("|", 6)
    if len(parts) != 7 or not parts[0].strip().isdigit():
        return None
    sent, total = _pair(parts[2])
    dials, _ = _pair(parts[3])
    return JobRow(parts[0].strip(), parts[1].strip() or "?", sent, total, dials,
                  parts[4].strip(), parts[6].strip(), parts[5].strip())


def parse_received(line: str) -> ReceivedRow | None:
    parts = line.split("|", 5)
    if len(parts) != 6 or not _RECVQ_NAME.match(parts[0].strip()):
        return None
    try:
        pages = int(parts[1].strip() or 0)
    except ValueError:
        pages = 0
    return ReceivedRow(parts[0].strip(), pages, parts[2].strip() == "*", parts[3].strip(),
                       parts[5].strip(), parts[4].strip())


@dataclass(frozen=True, slots=True)
class JobParameters:
    number: str
    owner: str = "callcenter"
    vres: int = 196  # 196 fine, 98 normal
    page_width_mm: int = 209
    page_length_mm: int = 296
    use_ecm: bool = True
    modem: str = "any"  # a modem or class of hfaxd's config ("any": the first free one)
    tag: str = "-"  # JOBINFO, listed as %J: which job and call of ours this is (no spaces)


class HylaFaxClient:
    """One hfaxd session; every method may be called from any thread (one at a time)."""

    def __init__(self, host: str, port: int, user: str, password: str = "",
                 timeout: float = 15.0, admin_password: str = "") -> None:
        self.host, self.port, self.user = host, port, user
        self._password = password
        self._admin = admin_password
        self.timeout = timeout
        self._ftp: ftplib.FTP | None = None
        self._lock = threading.Lock()
        self.greeting = ""

    def _session(self) -> ftplib.FTP:
        if self._ftp is not None:
            return self._ftp
        ftp = ftplib.FTP(timeout=self.timeout)
        try:
            self.greeting = ftp.connect(self.host, self.port)
            ftp.login(self.user, self._password)
            if self._admin:
                # Without it hfaxd lists recvq (files of mode 0644 only) but never deletes.
                ftp.sendcmd(f"ADMIN {self._admin}")
            ftp.sendcmd("TYPE I")
            ftp.sendcmd(f'JOBFMT "{JOB_FORMAT}"')
            ftp.sendcmd(f'RCVFMT "{RECEIVE_FORMAT}"')
        except (ftplib.Error, OSError) as exc:
            ftp.close()
            raise HylaFaxError(f"hfaxd {self.host}:{self.port}: {exc}") from None
        self._ftp = ftp
        return ftp

    def _run(self, work):  # type: ignore[no-untyped-def]
        with self._lock:
            ftp = self._session()
            try:
                return work(ftp)
            except (ftplib.error_temp, ftplib.error_reply, OSError, EOFError) as exc:
                # The session is in an unknown state: start a new one next time.
                self._drop()
                raise HylaFaxError(str(exc)) from None
            except ftplib.error_perm as exc:
                raise HylaFaxError(str(exc)) from None

    def _drop(self) -> None:
        if self._ftp is not None:
            try:
                self._ftp.close()
            finally:
                self._ftp = None

    def close(self) -> None:
        with self._lock:
            if self._ftp is not None:
                with contextlib.suppress(ftplib.Error, OSError, EOFError):
                    self._ftp.quit()
                self._drop()

    def login_check(self) -> str:
        return self._run(lambda ftp: self.greeting)

    def submit(self, tiff: Path, params: JobParameters) -> str:
        def work(ftp: ftplib.FTP) -> str:
            with tiff.open("rb") as fh:
                stored = ftp.storbinary("STOT", fh)
            found = _TEMP_FILE.search(stored)
            if not found:
                raise HylaFaxError(f"no file name in the STOT answer: {stored[:100]}")
            made = _JOB_ID.search(ftp.sendcmd("JNEW"))
            if not made:
                raise HylaFaxError("JNEW gave no job id")
            # Every parameter, every time: JNEW inherits the previous job's values.
            for name, value in (
                ("FROMUSER", params.owner), ("NOTIFYADDR", params.owner), ("NOTIFY", "none"),
                ("LASTTIME", "000259"), ("SENDTIME", "NOW"),
                # One call per job: retries are the core's (its policy, its counter).
                ("MAXDIALS", "1"), ("MAXTRIES", "1"), ("SCHEDPRI", "127"),
                # EXTERNAL (the number shown) is inherited too, unlike what its name says.
                ("DIALSTRING", params.number), ("EXTERNAL", params.number),
                ("MODEM", params.modem),
                ("VRES", str(params.vres)),
                ("PAGEWIDTH", str(params.page_width_mm)),
                ("PAGELENGTH", str(params.page_length_mm)), ("PAGECHOP", "none"),
                ("CHOPTHRESHOLD", "3"), ("USEECM", "yes" if params.use_ecm else "no"),
                ("JOBINFO", params.tag or "-"), ("DOCUMENT", found.group(1)),
            ):
                try:
                    ftp.sendcmd(f"JPARM {name} {value}")
                except ftplib.error_perm:
                    # Never leave a half-made job behind for the next JNEW to inherit.
                    with contextlib.suppress(ftplib.Error):
                        ftp.sendcmd(f"JDELE {made.group(1)}")
                    raise
            try:
                ftp.sendcmd("JSUBM")
            except ftplib.error_perm:
                raise  # refused: no job was queued
            except (ftplib.Error, OSError, EOFError) as exc:
                self._drop()
                raise HylaFaxSubmitUnknown(f"no answer to JSUBM: {exc}") from None
            return made.group(1)

        return self._run(work)

    def jobs(self) -> list[JobRow]:
        def work(ftp: ftplib.FTP) -> list[JobRow]:
            rows: list[JobRow] = []
            for queue in ("sendq", "doneq"):
                lines: list[str] = []
                ftp.retrlines(f"LIST {queue}", lines.append)
                rows += [row for row in map(parse_job, lines) if row is not None]
            return rows

        return self._run(work)

    def kill(self, job_id: str) -> None:
        if not job_id.isdigit():
            raise HylaFaxError("bad job id")
        self._run(lambda ftp: ftp.sendcmd(f"JKILL {job_id}"))

    def received(self) -> list[ReceivedRow]:
        def work(ftp: ftplib.FTP) -> list[ReceivedRow]:
            lines: list[str] = []
            ftp.retrlines("LIST recvq", lines.append)
            return [row for row in map(parse_received, lines) if row is not None]

        return self._run(work)

    def fetch(self, name: str, target: Path) -> None:
        if not _RECVQ_NAME.match(name):
            raise HylaFaxError("bad file name")

        def work(ftp: ftplib.FTP) -> None:
            buffer = io.BytesIO()
            ftp.retrbinary(f"RETR recvq/{name}", buffer.write)
            tmp = target.with_suffix(".part")
            tmp.write_bytes(buffer.getvalue())
            tmp.replace(target)

        self._run(work)

    def delete(self, name: str) -> None:
        if not _RECVQ_NAME.match(name):
            raise HylaFaxError("bad file name")
        self._run(lambda ftp: ftp.sendcmd(f"DELE recvq/{name}"))
