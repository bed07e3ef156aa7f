"""The test PBX of the SIP line tests, composed on :mod:`tests.sip.kamailio` (one kamailio
harness): its registrar (users, 403 for ``blocked``) plus a proxy with a ring group, outside
numbers to a "carrier", static extensions, and the presence server for the dialog event
package (RFC 4235) fed by its own dialogs. Async, for the line's tests; ``restart()`` keeps
the port and loses every registration and subscription, as a PBX reboot does."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from tests.sip.kamailio import Kamailio as KamailioProcess
from tests.sip.kamailio import KamailioConfig

DBTEXT = Path("/usr/share/kamailio/dbtext/kamailio")
PRESENCE_TABLES = ("version", "presentity", "active_watchers", "watchers", "xcap", "pua")
PRESENCE_MODULES = ["kex", "corex", "tmx", "db_text", "dialog", "presence",
                    "presence_dialoginfo", "pua", "pua_dialoginfo"]

# Before REGISTER: in-dialog requests and CANCEL (calls are not all record-routed).
IN_DIALOG = """
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
            exit;
        }
        if (is_method("ACK")) {
            if (t_check_trans()) {
                t_relay();
            }
            exit;
        }
        if (is_method("SUBSCRIBE") && uri == myself) {
            route(PRESENCE);
        }
        if (is_method("NOTIFY|BYE|REFER|INFO")) {
            t_relay();
            exit;
        }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    t_check_trans();
"""

NEW_REQUESTS = """
    if (is_method("PUBLISH|SUBSCRIBE")) {
        route(PRESENCE);
    }
    if (is_method("INVITE|REFER") && $sht(users=>$fU) != $null) {
        # our own users authenticate; the carrier (sipp, From "pbx") does not
        if (!pv_proxy_authenticate("$fd", "$sht(users=>$fU)", "0")) {
            proxy_challenge("$fd", "0");
            exit;
        }
        consume_credentials();
    }
    if (is_method("INVITE")) {
        record_route();
        setflag(4);
    }
    route(LOCATION);
"""

ROUTES = """
route[LOCATION] {
@STATIC@
    if ($rU == "@GROUP@") {
        # the ring group: every member and the observer at once (parallel forking)
        $var(members) = "@GROUP_MEMBERS@";
        $ru = "sip:" + $(var(members){s.select,0,,}) + "@127.0.0.1:@PORT@";
        $var(i) = 1;
        while ($(var(members){s.select,$var(i),,}) != "") {
            append_branch("sip:" + $(var(members){s.select,$var(i),,}) + "@127.0.0.1:@PORT@");
            $var(i) = $var(i) + 1;
        }
        if (!lookup_branches("location")) {
            sl_send_reply("480", "Nobody registered");
            exit;
        }
        t_relay();
        exit;
    }
    if (!lookup("location")) {
        if ($rU =~ "^[+]?[0-9]{7,}$") {
            $du = "sip:@CARRIER@";
            t_relay();
            exit;
        }
        if ($sht(users=>$rU) != $null) {
            sl_send_reply("480", "Temporarily Unavailable");
            exit;
        }
        sl_send_reply("404", "Not Found");
        exit;
    }
    t_relay();
}

route[PRESENCE] {
    if (!t_newtran()) {
        sl_reply_error();
        exit;
    }
    if (is_method("PUBLISH")) {
        handle_publish();
        t_release();
        exit;
    }
    if (!has_totag() && !registered("location", "sip:$rU@127.0.0.1:@PORT@")) {
        # an extension whose phone is not registered: no dialog state to watch
        t_reply("480", "Not registered");
        exit;
    }
    handle_subscribe();
    t_release();
    exit;
}
"""


@dataclass
class PbxConfig(KamailioConfig):
    carrier: str = "127.0.0.1:9"  # where numbers of 7+ digits go
    group: str = "700"
    group_members: tuple[str, ...] = ()
    static: dict[str, str] = field(default_factory=dict)  # extension -> host:port
    dbdir: Path = Path()

    def __post_init__(self) -> None:
        self.modules = [*PRESENCE_MODULES, *self.modules]
        self.modparams = [
            'modparam("rr", "append_fromtag", 1)',
            'modparam("auth", "nonce_count", 1)',
            'modparam("auth", "qop", "auth")',
            'modparam("dialog", "dlg_flag", 4)',
            'modparam("presence", "db_url", "text://@DBDIR@")',
            'modparam("presence", "subs_db_mode", 0)',
            'modparam("presence", "server_address", "sip:127.0.0.1:@PORT@")',
            'modparam("presence", "min_expires", 1)',
            'modparam("pua", "db_url", "text://@DBDIR@")',
            'modparam("pua", "db_mode", 0)',
            'modparam("pua", "outbound_proxy", "sip:127.0.0.1:@PORT@")',
            'modparam("pua_dialoginfo", "include_callid", 1)',
            'modparam("pua_dialoginfo", "include_localremote", 1)',
            'modparam("pua_dialoginfo", "include_tags", 1)',
            *self.modparams]
        self.before_register = IN_DIALOG + self.before_register
        self.other_requests = NEW_REQUESTS
        self.routes = ROUTES + self.routes

    def render(self, udp_port: int, tcp_port: int) -> str:
        static = "\n".join(f'    if ($rU == "{u}") {{ $du = "sip:{a}"; t_relay(); exit; }}'
                           for u, a in self.static.items())
        text = super().render(udp_port, tcp_port)
        for key, value in (("STATIC", static), ("GROUP_MEMBERS", ",".join(self.group_members)),
                           ("GROUP", self.group), ("CARRIER", self.carrier),
                           ("DBDIR", str(self.dbdir)), ("PORT", str(udp_port))):
            text = text.replace(f"@{key}@", value)
        return text


class Kamailio:
    """The PBX, for async tests: ``address`` is its UDP host:port."""

    def __init__(self, work: Path, users: dict[str, str], *, blocked: tuple[str, ...] = (),
                 **kw: object) -> None:
        self.work = work
        self.config = PbxConfig(users=dict(users), forbidden=set(blocked),
                                dbdir=work / "db", **kw)  # type: ignore[arg-type]
        self.process = KamailioProcess(self.config, work)
        self.port = self.process.udp_port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.process.log_path

    def _empty_tables(self) -> None:
        db = self.config.dbdir
        db.mkdir(parents=True, exist_ok=True)
        for table in PRESENCE_TABLES:  # empty tables: a restart loses everything
            text = (DBTEXT / table).read_text()
            (db / table).write_text(text if table == "version" else text.splitlines()[0] + "\n")

    async def start(self) -> Kamailio:
        self._empty_tables()
        await asyncio.to_thread(self.process.start)
        return self

    async def stop(self) -> None:
        await asyncio.to_thread(self.process.stop)

    async def kill(self) -> None:
        """SIGKILL to kamailio and its children at once: the PBX vanishes mid-call."""
        proc = self.process.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
        self.process.proc = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()
