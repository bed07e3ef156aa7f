"""SIP trunks of an Asterisk line: listed live, added or edited in pjsip.conf through AMI.

A change is: ``GetConfig pjsip.conf`` (kept as the backup), ``UpdateConfig`` (``Reload: no``),
a ``GetConfig`` of the written section, ``module reload res_pjsip.so``, then the registration's
``Registry`` event (Registered, or Rejected — a 403 — or none in time). A change Asterisk
rejects or a registration that fails is reported in words and the sections it touched are put
back as the backup had them (another ``UpdateConfig`` with ``Reload: res_pjsip.so``).

Recorded quirks this follows (tests/fixtures/ami/README.md, 14_pjsip_trunk_admin): GetConfig
lists two sections of the same name ([trunk] endpoint and [trunk] aor), so sections are a list,
never a dict (GetConfigJSON's object has duplicate keys and is not used); there is no
``pjsip reload`` command (the product reloads with the ModuleLoad action, which answers an error
when the reload fails); the first REGISTER goes out after a random delay of up to 10 s.

Parsing and building are pure functions; :class:`TrunkAdmin` is the thin part that talks AMI.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from callcenter.audit.model import HIDDEN
from callcenter.errors import CallcenterError, ValidationError
from callcenter.lines.records import NAME
from pbx.ami.errors import AmiActionError, AmiError
from pbx.ami.message import Message

log = logging.getLogger(__name__)

PJSIP_CONF = "pjsip.conf"
RELOAD_MODULE = "res_pjsip.so"
REGISTRATION_WAIT = 20.0  # max_random_initial_delay is 10 s by default, plus the answer
FINAL = {"Registered", "Rejected"}

_NAME = NAME  # a trunk is named like a line
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
_USER = re.compile(r"^[A-Za-z0-9_.+*#-]{1,64}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_.-]{1,79}$")
_LINE_KEY = re.compile(r"^Line-(\d{6})-(\d{6})$")


class TrunkChangeFailed(CallcenterError):
    """The PBX refused a trunk change, or its registration failed; ``restored`` says whether
    the previous pjsip.conf sections were put back."""

    error_id = "trunk-change-failed"

    def __init__(self, message: str, *, restored: bool) -> None:
        super().__init__(message)
        self.restored = restored


# -- pjsip.conf as GetConfig shows it ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    lines: tuple[tuple[str, str], ...]
    templates: tuple[str, ...] = ()

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.lines if k == key), None)

    @property
    def type(self) -> str:
        return self.get("type") or ""


def parse_getconfig(response: Message) -> list[Section]:
    """``Category-NNNNNN`` / ``Templates-NNNNNN`` / ``Line-NNNNNN-MMMMMM: key=value``, in
    order; sections of the same name stay apart."""
    names: dict[str, str] = {}
    templates: dict[str, tuple[str, ...]] = {}
    lines: dict[str, list[tuple[int, str, str]]] = {}
    for key, value in response.headers.items():
        if key.startswith("Category-"):
            names[key[9:]] = value
        elif key.startswith("Templates-"):
            templates[key[10:]] = tuple(t.strip() for t in value.split(",") if t.strip())
        else:
            match = _LINE_KEY.match(key)
            if match:
                var, _, val = value.partition("=")
                lines.setdefault(match[1], []).append((int(match[2]), var.strip(), val.strip()))
    return [Section(names[n], tuple((k, v) for _, k, v in sorted(lines.get(n, []))),
                    templates.get(n, ()))
            for n in sorted(names)]


# -- what the admin gives ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrunkSpec:
    """A SIP trunk with an optional outbound registration: the sections ``<name>`` (endpoint),
    ``<name>-aor``, ``<name>-identify``, ``<name>-auth`` (with a password) and ``<name>-reg``
    (with ``register``)."""

    name: str
    host: str
    port: int = 5060
    username: str = ""  # the account at the provider (client URI user, contact_user)
    password: str = field(default="", repr=False)
    context: str = "from-trunk"
    transport: str = "transport-udp"
    register: bool = True
    expiration: int = 120
    template: str = ""  # an endpoint template of pjsip.conf to inherit, such as ep-common

    @property
    def server_uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    @property
    def client_uri(self) -> str:
        return f"sip:{self.username}@{self.host}:{self.port}"

    def section_names(self) -> list[str]:
        return [self.name, f"{self.name}-aor", f"{self.name}-identify", f"{self.name}-auth",
                f"{self.name}-reg"]


def validate_spec(spec: TrunkSpec) -> None:
    checks = [
        (bool(_NAME.match(spec.name)), "name",
         "a trunk name is 1 to 40 letters, digits, '.', '_' or '-'"),
        (bool(_HOST.match(spec.host)), "host", "host must be a host name or an IPv4 address"),
        (1 <= spec.port <= 65535, "port", "port must be between 1 and 65535"),
        (not spec.username or bool(_USER.match(spec.username)), "username",
         "username may hold letters, digits and _ . + * # - only"),
        (not (spec.register and not spec.username), "username",
         "a registration needs the account's username"),
        (bool(_CONTEXT.match(spec.context)), "context", "context must be a dialplan context"),
        (bool(_CONTEXT.match(spec.transport)), "transport",
         "transport must be a transport section of pjsip.conf, such as transport-udp"),
        (60 <= spec.expiration <= 86400, "expiration",
         "expiration must be between 60 and 86400 seconds"),
        (not spec.template or bool(_CONTEXT.match(spec.template)), "template",
         "template must be a section name of pjsip.conf"),
        (len(spec.password) <= 128 and not any(c in spec.password for c in ";\r\n\x00")
         and spec.password == spec.password.strip(), "password",
         "the password may not hold ';' (pjsip.conf reads it as a comment), line breaks or "
         "spaces at its ends"),
        # UpdateConfig takes a value's leading '>' as the "=>" object mark and drops it.
        (not spec.password.startswith(">"), "password",
         "the password may not start with '>' (Asterisk's UpdateConfig drops it)"),
    ]
    for ok, name, text in checks:
        if not ok:
            raise ValidationError(text, field=name)


def build_sections(spec: TrunkSpec, keep_password: str = "") -> list[Section]:
    """The sections of ``spec``, in the order they are written."""
    password = spec.password or keep_password
    endpoint: list[tuple[str, str]] = []
    if not spec.template:
        endpoint += [("type", "endpoint"), ("disallow", "all"), ("allow", "ulaw,alaw")]
    endpoint += [("context", spec.context), ("aors", f"{spec.name}-aor"),
                 ("from_domain", spec.host)]
    if spec.username:
        endpoint.append(("from_user", spec.username))
    if password:
        endpoint.append(("outbound_auth", f"{spec.name}-auth"))
    sections = [
        Section(spec.name, tuple(endpoint), (spec.template,) if spec.template else ()),
        Section(f"{spec.name}-aor", (("type", "aor"), ("contact", spec.server_uri),
                                     ("qualify_frequency", "0"))),
        Section(f"{spec.name}-identify", (("type", "identify"), ("endpoint", spec.name),
                                          ("match", spec.host))),
    ]
    if password:
        sections.append(Section(f"{spec.name}-auth", (
            ("type", "auth"), ("auth_type", "userpass"), ("username", spec.username),
            ("password", password))))
    if spec.register:
        reg = [("type", "registration"), ("transport", spec.transport),
               ("server_uri", spec.server_uri), ("client_uri", spec.client_uri),
               ("contact_user", spec.username), ("expiration", str(spec.expiration)),
               ("retry_interval", "30"), ("endpoint", spec.name), ("line", "yes")]
        if password:
            reg.append(("outbound_auth", f"{spec.name}-auth"))
        sections.append(Section(f"{spec.name}-reg", tuple(reg)))
    return sections


def update_headers(delete: list[str], write: list[Section]) -> list[tuple[str, str]]:
    """UpdateConfig's numbered headers: DelCat each of ``delete``, then NewCat + Append."""
    headers: list[tuple[str, str]] = []
    n = 0

    def add(action: str, cat: str, *extra: tuple[str, str]) -> None:
        nonlocal n
        headers.extend([(f"Action-{n:06d}", action), (f"Cat-{n:06d}", cat)])
        headers.extend((f"{k}-{n:06d}", v) for k, v in extra)
        n += 1

    for name in delete:
        add("DelCat", name)
    for section in write:
        options = (("Options", f"inherit={','.join(section.templates)}"),) if (
            section.templates) else ()
        add("NewCat", section.name, *options)
        for key, value in section.lines:
            add("Append", section.name, ("Var", key), ("Value", value))
    return headers


def sections_named(sections: list[Section], names: list[str]) -> list[Section]:
    wanted = set(names)
    return [s for s in sections if s.name in wanted]


def restore_plan(before: list[Section], touched: list[str]) -> tuple[list[str], list[Section]]:
    """What puts the touched sections back as the backup had them: delete every touched name
    that exists now, then write the backup's sections of those names. (GetConfig shows a
    section with its templates' lines expanded; written back with the same ``inherit`` the
    values are the same, the template lines merely repeated.) GetConfig gives a ``\\;`` of the
    file as a bare ``;``: written back escaped again, or the rest would become a comment."""
    return list(touched), [replace(s, lines=tuple((k, v.replace(";", "\\;"))
                                                  for k, v in s.lines))
                           for s in sections_named(before, touched)]


# -- the live part ----------------------------------------------------------------------------


class AmiSession(Protocol):
    async def action(self, name: str, headers: Any = (), timeout: float | None = None, *,
                     check: bool = True) -> Message: ...

    async def list_action(self, name: str, headers: Any = (), timeout: float | None = None,
                          *, apply: Any = None) -> tuple[Message, list[Message]]: ...


@dataclass
class LiveState:
    """What Registry, ContactStatus and PeerStatus events said last (client URI, contact
    URI, endpoint -> status, time)."""

    registrations: dict[str, tuple[str, float]] = field(default_factory=dict)
    contacts: dict[str, tuple[str, float]] = field(default_factory=dict)
    peers: dict[str, tuple[str, float]] = field(default_factory=dict)
    waiters: dict[str, list[asyncio.Future[str]]] = field(default_factory=dict)
    version: int = 0  # counts the changes: a page polling it re-reads when it moves

    def to_json(self) -> dict[str, Any]:
        def entries(items: dict[str, tuple[str, float]]) -> dict[str, dict[str, Any]]:
            return {k: {"status": v[0], "at": v[1]} for k, v in items.items()}

        return {"version": self.version, "registrations": entries(self.registrations),
                "contacts": entries(self.contacts), "peers": entries(self.peers)}

    def feed(self, msg: Message) -> bool:
        """True when the event changed a trunk's state."""
        changed = self._feed(msg)
        if changed:
            self.version += 1
        return changed

    def _feed(self, msg: Message) -> bool:
        event, now = msg.event, time.time()
        if event == "Registry" and msg.get("ChannelType") == "PJSIP":
            uri, status = msg.get("Username") or "", msg.get("Status") or ""
            self.registrations[uri] = (status, now)
            if status in FINAL:
                for waiter in self.waiters.pop(uri, []):
                    if not waiter.done():
                        waiter.set_result(status)
            return True
        if event == "ContactStatus":
            self.contacts[msg.get("URI") or ""] = (msg.get("ContactStatus") or "", now)
            return True
        if event == "PeerStatus" and msg.get("ChannelType") == "PJSIP":
            peer = (msg.get("Peer") or "").removeprefix("PJSIP/")
            self.peers[peer] = (msg.get("PeerStatus") or "", now)
            return True
        return False

    def wait_for(self, client_uri: str, since: float | None = None) -> asyncio.Future[str]:
        """The next final status of ``client_uri``; with ``since``, one already reported at
        or after that time counts too (it came before the caller could wait)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        status, at = self.registrations.get(client_uri, ("", 0.0))
        if since is not None and status in FINAL and at >= since:
            future.set_result(status)
            return future
        self.waiters.setdefault(client_uri, []).append(future)
        future.add_done_callback(lambda f: self._forget(client_uri, f))  # timed out too
        return future

    def _forget(self, client_uri: str, future: asyncio.Future[str]) -> None:
        waiting = self.waiters.get(client_uri)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self.waiters[client_uri]


def _contacts(text: str) -> list[str]:
    # "101/sip:101@127.0.0.1:5171," -> ["sip:101@127.0.0.1:5171"]
    out = []
    for item in text.split(","):
        item = item.strip()
        if item:
            out.append(item.split("/", 1)[1] if "/" in item else item)
    return out


class TrunkAdmin:
    def __init__(self, session: Callable[[], AmiSession], live: LiveState, *,
                 trunk_endpoints: frozenset[str] = frozenset(),
                 registration_wait: float = REGISTRATION_WAIT) -> None:
        self._session = session
        self.live = live
        self.trunk_endpoints = trunk_endpoints
        self.registration_wait = registration_wait
        self._lock = asyncio.Lock()

    @property
    def busy(self) -> asyncio.Lock:
        """Held while a trunk is changed (and restored): the line stops only once it is free,
        so a change is never cut between pjsip.conf written and restored."""
        return self._lock

    async def endpoints(self) -> list[dict[str, Any]]:
        """The PBX's PJSIP endpoints: name, device state, contacts (the admin's "import
        extensions from the PBX" reads this)."""
        _, items = await self._session().list_action("PJSIPShowEndpoints")
        out = []
        for item in items:
            if item.event != "EndpointList":
                continue
            name = item.get("ObjectName") or ""
            peer = self.live.peers.get(name)
            out.append({"name": name, "state": item.get("DeviceState") or "",
                        "reachable": peer[0] if peer else "",
                        "contacts": _contacts(item.get("Contacts") or ""),
                        "active_channels": int(item.get("ActiveChannels") or 0)})
        return out

    async def registrations(self) -> list[dict[str, Any]]:
        _, items = await self._session().list_action("PJSIPShowRegistrationsOutbound")
        out = []
        for item in items:
            if item.event != "OutboundRegistrationDetail":
                continue
            client = item.get("ClientUri") or ""
            status = item.get("Status") or ""
            live = self.live.registrations.get(client)
            out.append({"name": item.get("ObjectName") or "", "server_uri":
                        item.get("ServerUri") or "", "client_uri": client,
                        "endpoint": item.get("Endpoint") or "",
                        "status": live[0] if live else status})
        return out

    async def contacts(self) -> list[dict[str, Any]]:
        try:
            _, items = await self._session().list_action("PJSIPShowContacts")
        except AmiActionError as exc:
            # Only static AOR contacts: Asterisk says "No Contacts found". Contacts are extra
            # detail; a PBX refusing the list must not hide the endpoints and registrations.
            message = exc.response.get("Message") or ""
            if "no contacts" not in message.lower():
                log.warning("PJSIPShowContacts refused: %s", message)
            return []
        out = []
        for item in items:
            uri = item.get("Uri") or item.get("URI") or ""
            live = self.live.contacts.get(uri)
            out.append({"aor": item.get("Aor") or item.get("AOR") or "", "uri": uri,
                        "endpoint": item.get("EndpointName") or "",
                        "status": live[0] if live else (item.get("Status") or "")})
        return out

    async def overview(self) -> dict[str, Any]:
        # Asked at once: three list answers, in whatever order the PBX sends them.
        endpoints, registrations, contacts = await asyncio.gather(
            self.endpoints(), self.registrations(), self.contacts())
        registered_endpoints = {r["endpoint"]: r for r in registrations if r["endpoint"]}
        for endpoint in endpoints:
            reg = registered_endpoints.get(endpoint["name"])
            endpoint["trunk"] = endpoint["name"] in self.trunk_endpoints or reg is not None
            endpoint["registration"] = reg["status"] if reg else ""
        return {"endpoints": endpoints, "registrations": registrations, "contacts": contacts}

    async def save(self, spec: TrunkSpec) -> dict[str, Any]:
        """Add or replace trunk ``spec.name``; returns the registration result in words."""
        validate_spec(spec)
        async with self._lock:
            return await self._save(spec)

    async def _save(self, spec: TrunkSpec) -> dict[str, Any]:
        session = self._session()
        try:
            before = parse_getconfig(await session.action(
                "GetConfig", [("Filename", PJSIP_CONF)]))
        except AmiError as exc:
            raise TrunkChangeFailed(f"could not read pjsip.conf (GetConfig: {exc}); nothing "
                                    "was changed", restored=False) from exc
        touched = spec.section_names()
        names = [s.name for s in before]
        twice = sorted({n for n in touched if names.count(n) > 1})
        if twice:
            raise TrunkChangeFailed(
                f"pjsip.conf has more than one section [{twice[0]}]: edit that trunk in "
                "pjsip.conf itself; nothing was changed", restored=False)
        foreign = [s for s in sections_named(before, [spec.name]) if s.type not in ("endpoint",
                                                                                     "")]
        if foreign:
            raise ValidationError(f"pjsip.conf already has a [{spec.name}] section of type "
                                  f"{foreign[0].type}: choose another trunk name", field="name")
        # UpdateConfig's Options are comma-separated: "inherit=a,b" would keep only a, and
        # the restore could not give such a section back as it was.
        many = next((s for s in sections_named(before, touched) if len(s.templates) > 1), None)
        if many is not None:
            raise ValidationError(
                f"pjsip.conf's [{many.name}] inherits {len(many.templates)} templates "
                f"({', '.join(many.templates)}), which AMI cannot write back: edit that trunk "
                "in pjsip.conf itself; nothing was changed", field="name")
        kept = next((s.templates[0] for s in sections_named(before, [spec.name])
                     if s.templates), "")
        if kept and not spec.template:  # the page has no template field: keep the file's
            spec = replace(spec, template=kept)
        # An endpoint that is neither a trunk of this line nor one this page wrote (with its
        # [<name>-identify]) is a phone's: never overwritten by a trunk of the same name.
        if (spec.name in names and spec.name not in self.trunk_endpoints
                and f"{spec.name}-identify" not in names):
            raise ValidationError(
                f"pjsip.conf has an endpoint [{spec.name}] that is not a trunk of this line (a "
                "phone?): choose another trunk name, or list it in the line's trunk endpoints",
                field="name")
        old_password = next((s.get("password") or "" for s in sections_named(
            before, [f"{spec.name}-auth"])), "")
        write = build_sections(spec, keep_password=old_password)
        existing = [n for n in touched if n in names]
        headers = [("SrcFilename", PJSIP_CONF), ("DstFilename", PJSIP_CONF),
                   ("Reload", "no"), *update_headers(existing, write)]
        try:
            await session.action("UpdateConfig", headers)
        except AmiActionError as exc:
            # Asterisk writes nothing when one of the actions fails.
            raise TrunkChangeFailed(
                f"Asterisk refused the change of pjsip.conf: "
                f"{exc.response.get('Message') or 'error'}; nothing was changed",
                restored=False) from exc
        except AmiError as exc:
            restored = await self._restore(before, touched, None)
            raise TrunkChangeFailed(
                f"the change of pjsip.conf got no answer ({exc}); " + (
                    "the previous configuration was restored" if restored else
                    "restoring the previous configuration FAILED: check pjsip.conf"),
                restored=restored) from exc
        waiter: asyncio.Future[str] | None = None
        try:
            written = parse_getconfig(await session.action(
                "GetConfig", [("Filename", PJSIP_CONF), ("Category", write[-1].name)]))
            if not written:
                raise TrunkChangeFailed("pjsip.conf did not keep the new sections",
                                        restored=False)
            # ModuleLoad, not Command 'module reload': a Command answers Success whatever
            # its output says; ModuleLoad answers Error when the reload fails (manager.c).
            reloading = time.time()
            reload = await session.action("ModuleLoad", [("LoadType", "reload"),
                                                         ("Module", RELOAD_MODULE)],
                                          check=False)
            if (reload.response or "").lower() != "success":
                raise TrunkChangeFailed("Asterisk could not reload res_pjsip: "
                                        + (reload.get("Message") or "error"), restored=False)
            # Only what is said about the registration after the reload counts (a Registry
            # event of the old one, still retrying, is not this change's result).
            waiter = self.live.wait_for(spec.client_uri, since=reloading) if (
                spec.register) else None
            result = await self._registration(spec, waiter)
        except (TrunkChangeFailed, AmiError) as exc:
            if waiter is not None:
                waiter.cancel()
            restored = await self._restore(before, touched, {w.name for w in write})
            text = exc.message if isinstance(exc, TrunkChangeFailed) else str(exc)
            raise TrunkChangeFailed(
                text + ("; the previous configuration was restored" if restored else
                        "; restoring the previous configuration FAILED: check pjsip.conf"),
                restored=restored) from exc
        log.info("trunk %s saved in pjsip.conf: %s", spec.name, result["message"])
        # For the audit entry: the sections as they were, passwords masked.
        result["previous"] = {s.name: {k: (HIDDEN if k == "password" else v) for k, v in s.lines}
                              for s in sections_named(before, touched)}
        return result

    async def _registration(self, spec: TrunkSpec, waiter: asyncio.Future[str] | None
                            ) -> dict[str, Any]:
        if waiter is None:
            return {"ok": True, "trunk": spec.name, "registration": "",
                    "message": f"trunk {spec.name} saved (no registration)"}
        try:
            status = await asyncio.wait_for(waiter, self.registration_wait)
        except TimeoutError:
            status = ""
        registrations = {r["client_uri"]: r for r in await self.registrations()}
        if not status:
            status = registrations.get(spec.client_uri, {}).get("status", "")
        if status == "Registered":
            return {"ok": True, "trunk": spec.name, "registration": "Registered",
                    "message": f"{spec.client_uri} registered at {spec.server_uri}"}
        if status == "Rejected":
            raise TrunkChangeFailed(
                f"{spec.server_uri} rejected the registration of {spec.client_uri} (a SIP "
                "error such as 403 Forbidden: check the username, the password and that the "
                "provider expects this address)", restored=False)
        raise TrunkChangeFailed(
            f"no answer to the registration of {spec.client_uri} from {spec.server_uri} "
            f"within {self.registration_wait:g} s (status {status or 'unknown'}): check the "
            "host, the port and the firewall", restored=False)

    async def _restore(self, before: list[Section], touched: list[str],
                       present: set[str] | None) -> bool:
        """Put the touched sections back as ``before`` had them; ``present`` are the touched
        names that exist now (None: unknown, asked with GetConfig). DelCat of a missing
        section would fail the whole UpdateConfig, so only those present are deleted.
        Whatever goes wrong (the line stopped meanwhile too) is a False: the caller must say
        "restoring FAILED", never lose that for another exception."""
        try:
            return await self._restore_sections(before, touched, present)
        except Exception:
            log.exception("could not restore pjsip.conf (sections %s)", ", ".join(touched))
            return False

    async def _restore_sections(self, before: list[Section], touched: list[str],
                                present: set[str] | None) -> bool:
        session = self._session()
        delete, write = restore_plan(before, touched)
        if present is None:
            try:
                present = {s.name for s in parse_getconfig(await session.action(
                    "GetConfig", [("Filename", PJSIP_CONF)]))}
            except AmiError as exc:
                log.error("could not read pjsip.conf to restore it: %s", exc)
                return False
        headers = [("SrcFilename", PJSIP_CONF), ("DstFilename", PJSIP_CONF),
                   ("Reload", "res_pjsip.so"),
                   *update_headers([n for n in delete if n in present], write)]
        try:
            await session.action("UpdateConfig", headers)
        except AmiError as exc:
            log.error("could not restore pjsip.conf: %s", exc)
            return False
        log.warning("pjsip.conf: sections %s restored from the backup", ", ".join(touched))
        return True
