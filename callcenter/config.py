"""Configuration: one TOML file, every value with a default, secrets from the environment.

Loading is strict: an unknown key or a value of the wrong type is an error that names the key
and the file, because a typo that silently does nothing is the worst kind of config bug.
Environment variables override file values: ``CALLCENTER_<SECTION>_<KEY>`` (for example
``CALLCENTER_SERVER_SECRET_KEY``), and for PBX lines ``CALLCENTER_PBX_<LINE NAME>_<KEY>``
(``CALLCENTER_PBX_OFFICE_SECRET``), so secrets need not be written in the file.

A hand-written loader rather than pydantic: the schema is a dozen flat dataclasses, and the one
thing we need beyond type checks — error text naming the file and the dotted key — would have
to be rebuilt around pydantic's errors anyway.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A bad configuration value; the message names the key and the file."""


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # Signs session cookies. Empty: a random key is generated once and kept in the data folder.
    secret_key: str = ""
    # Set true behind HTTPS so cookies carry the Secure flag.
    secure_cookies: bool = False
    session_hours: int = 12
    # A request body must arrive whole within this many seconds (else 408): a client sending
    # one byte a second cannot hold a request open for ever.
    body_timeout: float = 30.0
    # Who may read /metrics (client addresses or networks, by the direct peer address: a
    # reverse proxy must not pass /metrics on). /health and /ready are open to all.
    metrics_allow: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1"])


@dataclass
class StoreConfig:
    # Folder for the database, recordings and generated secrets; relative to the config file.
    data_dir: str = "var"
    database: str = "callcenter.db"
    # "postgresql://user@host:5432/callcenter" stores everything in PostgreSQL instead of the
    # SQLite file; the password comes from CALLCENTER_STORE_PASSWORD, not from this file.
    url: str = ""
    password: str = field(default="", repr=False)


@dataclass
class PhonesConfig:
    default_region: str = "RU"
    match_digits: int = 10
    max_extension_digits: int = 6


@dataclass
class ConsoleConfig:
    managers_see_all_clients: bool = False
    # The language of new users unless one is given ("en" or "ru"); each user can change it.
    default_language: str = "en"


@dataclass
class RecordingsConfig:
    # "mount": the PBX's recording folder is mounted here; "sftp": fetched over SSH.
    fetch: str = "mount"
    mount_path: str = "/var/spool/asterisk/monitor"
    # The folder as the PBX names it in MIXMONITOR_FILENAME, replaced by mount_path.
    pbx_path: str = "/var/spool/asterisk/monitor"
    sftp_host: str = ""
    sftp_port: int = 22
    sftp_username: str = ""
    sftp_password: str = ""
    sftp_known_hosts: str = ""
    retry_seconds: int = 60
    max_attempts: int = 10
    # SSH connect + handshake + login limit, and keepalives that detect a dead connection.
    sftp_connect_timeout: float = 15.0
    sftp_keepalive_seconds: float = 15.0
    # Time limit of one file's fetch (a try that takes longer counts as a failed attempt).
    fetch_timeout: float = 600.0
    # How many files are fetched at once; each on its own, a slow one delays no other.
    parallel_fetches: int = 4
    # A recording whose call end was never seen (callcenter stopped during the call) is
    # fetched once its size stayed the same across two checks this far apart: above the
    # NFS attribute cache (acregmax, 60 s by default), which can show an old size that long.
    settle_seconds: float = 120.0
    # VoiceMail() messages (VM_MESSAGEFILE): the PBX's voicemail spool as it names it, and the
    # same folder as mounted here (fetch = "mount"; SFTP reads it from the same server).
    voicemail_pbx_path: str = "/var/spool/asterisk/voicemail"
    voicemail_mount_path: str = "/var/spool/asterisk/voicemail"
    # The first format of voicemail.conf's `format` (VM_MESSAGEFILE comes without one).
    voicemail_format: str = "wav"


@dataclass
class PbxLineConfig:
    name: str = "office"
    kind: str = "asterisk"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "crm"
    secret: str = field(default="", repr=False)  # never in a log line or a traceback
    trunk_endpoints: list[str] = field(default_factory=lambda: ["trunk"])
    trunk_contexts: list[str] = field(default_factory=lambda: ["from-trunk"])
    # Context where click-to-call dials the outside number after the user's phone answers.
    originate_context: str = "from-internal"
    # Technology prefix of the office phones: PJSIP/101.
    extension_technology: str = "PJSIP"
    # Record every answered call with MixMonitor, for PBXs whose dialplan does not.
    record_calls: bool = False
    # Which inbound calls no person answered get a callback task (see CALLBACK_POLICIES).
    callback_on: str = "waited_or_voicemail"
    # Ask the PBX for CALLERID(pres) of each new inbound call (AMI Getvar): a caller who
    # withheld their number is hidden even when the carrier sends it. The dialplan variable
    # CRM_WITHHELD, when set, wins and saves the question. Seconds to wait for the answer
    # before showing the call as not withheld.
    withheld_getvar: bool = True
    withheld_timeout: float = 0.3
    # Click-to-call: how outside numbers are dialled (see DIAL_FORMATS), a prefix put before
    # every outside number ("9" for an outside line), and the international call prefix.
    dial_format: str = "as_entered"
    dial_prefix: str = ""
    international_prefix: str = "00"
    # The channel that rings the user's phone first; {ext} is the extension. Empty: the
    # extension_technology's (PJSIP/{ext}). FreePBX follow-me/ring groups: Local/{ext}@from-internal
    originate_channel: str = ""
    ping_interval: float = 20.0
    action_timeout: float = 10.0
    enabled: bool = True
    # AMI over TLS (manager.conf: tlsenable = yes, tlsbindaddr = 0.0.0.0:5039), and whether the
    # PBX's certificate is verified against the system's CAs (off for a self-signed one).
    tls: bool = False
    tls_verify: bool = True


# callback_on: "waited_or_voicemail" - the caller waited for a person (extensions rang, a queue
# held them) and got none, or left a voicemail; "voicemail" - only a left message; "always" -
# also calls the PBX answered alone (IVR, announcement); "never".
CALLBACK_POLICIES = ("waited_or_voicemail", "voicemail", "always", "never")
# dial_format: "as_entered" - digits as typed; "e164" - +79161234567; "national" - numbers of
# the office's country in national form (89161234567), others with the international prefix;
# "international" - every number as <international_prefix><country code><number>.
DIAL_FORMATS = ("as_entered", "e164", "national", "international")
_DIAL_PREFIX = re.compile(r"^[0-9*#]{0,8}$")
_CHANNEL_TEMPLATE = re.compile(r"^[A-Za-z0-9_]+/[A-Za-z0-9_@.{}/-]{1,80}$")


@dataclass
class FaxLineConfig:
    """One fax line (``[[fax]]``): which backend sends and receives, and the job policy."""

    name: str = "fax"
    kind: str = "asterisk"  # see FAX_KINDS
    enabled: bool = True
    # Retries on busy, no answer and line errors: calls per job (the first included), the
    # wait before the second, and the factor each further wait grows by.
    max_attempts: int = 3
    retry_seconds: float = 120.0
    retry_backoff: float = 2.0
    # A job that was mid-call when callcenter stopped is "interrupted"; true: call again from
    # page 1 (the far end may then get the first pages twice).
    retry_interrupted: bool = False
    # A call that reports no result after dial_timeout + pages x page_timeout seconds is
    # ended "failed, result unknown" (the line is free again).
    dial_timeout: float = 180.0
    page_timeout: float = 300.0
    local_station_id: str = ""  # our fax number as the far end sees it (20 characters)
    header: str = ""  # the page header line
    # asterisk: the AMI connection (as [[pbx]]), the channel a fax is dialled on ({number}),
    # the folders the TIFFs pass through (as Asterisk names them, and as mounted here).
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "crm"
    secret: str = ""
    channel: str = "PJSIP/{number}@trunk"
    caller_id: str = ""
    outgoing_pbx_path: str = "/var/spool/asterisk/fax/outgoing"
    outgoing_mount_path: str = "/var/spool/asterisk/fax/outgoing"
    incoming_pbx_path: str = "/var/spool/asterisk/fax/incoming"
    incoming_mount_path: str = "/var/spool/asterisk/fax/incoming"
    receive_contexts: list[str] = field(default_factory=lambda: ["from-trunk"])
    # SendFAX options: f = fall back to G.711 audio when the far end offers no T.38,
    # F = audio only (no T.38), s = FAXStatus events (needed), z = offer T.38 ourselves.
    sendfax_options: str = "fs"
    ecm: bool = True  # FAXOPT(ecm): error correction mode
    poll_seconds: float = 3.0  # FAXSession polls for the page being sent
    # hylafax: the hfaxd client protocol (port 4559) and its spool (recvq is read there).
    password: str = ""
    # hfaxd's ADMIN password (hosts.hfaxd, 4th field): needed to remove received faxes
    # from recvq once stored.
    admin_password: str = ""
    modem: str = "any"  # JPARM MODEM: a modem (ttyS0) or modem class of the HylaFAX host
    # loopback (demo, tests): a fax "sent" to itself, one page every page_seconds, then
    # received back from the number it was sent to.
    page_seconds: float = 2.0
    # spandsp (demo, tests): a real T.30 exchange with a second libspandsp terminal in this
    # process, over "t38" or "g711" audio; speed: multiple of real time (0 = as fast as it goes).
    transport: str = "t38"
    speed: float = 10.0


FAX_KINDS = ("asterisk", "hylafax", "loopback", "spandsp")


@dataclass
class DemoConfig:
    enabled: bool = False
    # Seconds between two demo calls.
    call_interval: float = 15.0
    # Seconds between two inbound SMS on the demo's emulated modems.
    sms_interval: float = 30.0


@dataclass
class SmtpConfig:
    """The mail server scheduled reports go through (the admin page's values win once set)."""

    host: str = ""  # empty: scheduled reports are not sent (the admin page says so)
    port: int = 587
    user: str = ""
    password: str = field(default="", repr=False)  # write-only; CALLCENTER_SMTP_PASSWORD
    starttls: bool = True  # upgrade with STARTTLS (port 587); false: plain (a local relay)
    ssl: bool = False  # TLS from the first byte (port 465)
    from_address: str = ""  # the From: of the mails ("from" is a Python keyword)
    timeout: float = 30.0


@dataclass
class CampaignsConfig:
    # The default send window of a new campaign, in the office's time zone (sms.timezone):
    # no messages at night.
    window_start: str = "09:00"
    window_end: str = "21:00"
    # Default messages per minute of a new campaign, on top of each SIM's own limits (0: none).
    per_minute: int = 30
    # How many of one campaign's messages may wait in the SMS queue at once: the rest wait as
    # campaign recipients, so a STOP, a pause or a closing window holds them back.
    max_queued: int = 16


@dataclass
class SmsConfig:
    # The office's time zone: SIM send windows and "sent today" counters follow its clock.
    timezone: str = "UTC"
    # Hours an outbound SMS may wait for a modem before it expires.
    validity_hours: float = 24.0
    # Tries of a part the network refused with a temporary error, and the first back-off.
    max_attempts: int = 5
    retry_seconds: float = 30.0
    # Seconds to wait for the missing parts of a long inbound SMS before it is shown
    # incomplete (a late part still joins it).
    reassembly_timeout: float = 600.0
    # Sent to a number that opted out ("STOP"); empty: none.
    optout_confirmation: str = ""
    # Balance request sent to each modem every balance_interval seconds (0: never).
    balance_ussd: str = "*100#"
    balance_interval: float = 21600.0
    # Ready-made texts offered in the compose box; {client.name}, {contact.name} and
    # {contact.first_name} are filled in from the client card.
    templates: list[str] = field(default_factory=list)


@dataclass
class GsmModemConfig:
    name: str = "gsm1"
    # The serial device, preferably a stable /dev/serial/by-id/... path.
    device: str = ""
    pin: str = field(default="", repr=False)  # the SIM's PIN: write-only, never logged
    baudrate: int = 115200
    # The SIM's limits: parts per minute and per day, and the hours it may send
    # ("08:00"-"21:00" in sms.timezone; both empty: any time).
    per_minute: int = 6
    per_day: int = 500
    window_start: str = ""
    window_end: str = ""
    enabled: bool = True


@dataclass
class ReportsConfig:
    # The office's time zone for report periods (days, weeks, DST); empty: the office hours'
    # zone (routing settings) when set, else sms.timezone.
    timezone: str = ""
    # A missed call counts as called back in time within this many minutes.
    callback_sla_minutes: float = 15.0


@dataclass
class ClusterConfig:
    """Several instances on one PostgreSQL store (callcenter/cluster/): ignored on SQLite."""

    # This instance's name in the line leases; empty: the host name and the process id.
    instance_id: str = ""
    # A line's owner renews its lease every second; another instance takes the line over
    # once the lease has run out (takeover within lease_seconds + 1 s, plus connecting).
    lease_seconds: float = 6.0
    # Cross-instance events are kept this long in the outbox for listeners that reconnect.
    outbox_hours: float = 24.0


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    phones: PhonesConfig = field(default_factory=PhonesConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    campaigns: CampaignsConfig = field(default_factory=CampaignsConfig)
    pbx: list[PbxLineConfig] = field(default_factory=list)
    fax: list[FaxLineConfig] = field(default_factory=list)
    sms: SmsConfig = field(default_factory=SmsConfig)
    gsm: list[GsmModemConfig] = field(default_factory=list)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # Where the values came from: the file, or "<defaults>".
    source: str = "<defaults>"
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def data_dir(self) -> Path:
        path = Path(self.store.data_dir)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_path(self) -> Path:
        path = Path(self.store.database)
        return path if path.is_absolute() else self.data_dir / path


_SECTIONS = {f.name for f in dataclasses.fields(Config)} - {"source", "base_dir"}


def load_config(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None
                ) -> Config:
    """Read the TOML file (or only defaults when ``path`` is None) and apply the environment."""
    env = os.environ if env is None else env
    data: dict[str, typing.Any] = {}
    source = "<defaults>"
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        source = str(file)
        base_dir = file.resolve().parent
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{file}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    config = Config(source=source, base_dir=base_dir)
    for key, value in data.items():
        if key not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section [{key}]")
        if key == "pbx":
            if not isinstance(value, list):
                raise ConfigError(f"{source}: [pbx] must be a list of tables: write [[pbx]]")
            config.pbx = [
                _build(PbxLineConfig, item, f"pbx[{i}]", source) for i, item in enumerate(value)
            ]
        elif key == "fax":
            if not isinstance(value, list):
                raise ConfigError(f"{source}: [fax] must be a list of tables: write [[fax]]")
            config.fax = [
                _build(FaxLineConfig, item, f"fax[{i}]", source) for i, item in enumerate(value)
            ]
        elif key == "gsm":
            if not isinstance(value, list):
                raise ConfigError(f"{source}: [gsm] must be a list of tables: write [[gsm]]")
            config.gsm = [
                _build(GsmModemConfig, item, f"gsm[{i}]", source) for i, item in enumerate(value)
            ]
        else:
            section_type = type(getattr(config, key))
            setattr(config, key, _build(section_type, value, key, source))
    _apply_env(config, env)
    _validate(config)
    return config


def _build(cls: type, values: typing.Any, where: str, source: str) -> typing.Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{where}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key {where}.{key}")
        kwargs[key] = _check(value, hints[key], f"{where}.{key}", source)
    return cls(**kwargs)


def _check(value: typing.Any, hint: typing.Any, key: str, source: str) -> typing.Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return [_check(v, item_type, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{source}: {key}: unsupported type")  # no optional keys in the schema
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    if not ok:
        shown = "(hidden)" if _is_secret(key) else repr(value)
        raise ConfigError(
            f"{source}: {key} must be {_type_name(hint)}, got {type(value).__name__} {shown}"
        )
    return value


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in ("secret", "password", "key")) or \
        key.lower().rsplit(".", 1)[-1] == "pin"


def _type_name(hint: typing.Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        hint, str(hint)
    )


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def _apply_env(config: Config, env: typing.Mapping[str, str]) -> None:
    targets: list[tuple[str, typing.Any, str]] = [
        (f"CALLCENTER_{_env_name(name)}_", getattr(config, name), name)
        for name in sorted(_SECTIONS - {"pbx", "fax", "gsm"})
    ]
    targets += [
        (f"CALLCENTER_PBX_{_env_name(line.name)}_", line, f"pbx[{line.name}]")
        for line in config.pbx
    ]
    targets += [
        (f"CALLCENTER_FAX_{_env_name(line.name)}_", line, f"fax[{line.name}]")
        for line in config.fax
    ]
    targets += [
        (f"CALLCENTER_GSM_{_env_name(modem.name)}_", modem, f"gsm[{modem.name}]")
        for modem in config.gsm
    ]
    for prefix, section, where in targets:
        hints = typing.get_type_hints(type(section))
        for f in dataclasses.fields(section):
            name = prefix + _env_name(f.name)
            if name not in env:
                continue
            raw = env[name]
            setattr(section, f.name, _from_env(raw, hints[f.name], name, where + "." + f.name))


def _from_env(raw: str, hint: typing.Any, name: str, key: str) -> typing.Any:
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if typing.get_origin(hint) is list:
            return [part.strip() for part in raw.split(",") if part.strip()]
        return raw
    except ValueError:
        raise ConfigError(
            f"environment variable {name} ({key}) must be {_type_name(hint)}"
        ) from None


def _validate(config: Config) -> None:
    src = config.source
    checks: list[tuple[bool, str]] = [
        (1 <= config.server.port <= 65535, "server.port must be between 1 and 65535"),
        (config.server.session_hours > 0, "server.session_hours must be positive"),
        (7 <= config.phones.match_digits <= 15, "phones.match_digits must be between 7 and 15"),
        (len(config.phones.default_region) == 2 and config.phones.default_region.isalpha(),
         "phones.default_region must be a two-letter country code such as RU or DE"),
        (1 <= config.phones.max_extension_digits <= 6,
         "phones.max_extension_digits must be between 1 and 6"),
        (config.console.default_language in {"en", "ru"},
         "console.default_language must be 'en' or 'ru'"),
        (config.recordings.fetch in {"mount", "sftp"},
         "recordings.fetch must be 'mount' or 'sftp'"),
        (config.recordings.sftp_connect_timeout > 0,
         "recordings.sftp_connect_timeout must be positive"),
        (config.recordings.sftp_keepalive_seconds >= 0,
         "recordings.sftp_keepalive_seconds must not be negative (0 = no keepalives)"),
        (config.recordings.fetch_timeout > 0, "recordings.fetch_timeout must be positive"),
        (config.recordings.parallel_fetches >= 1,
         "recordings.parallel_fetches must be at least 1"),
        (config.recordings.settle_seconds >= 0, "recordings.settle_seconds must not be negative"),
        (config.recordings.max_attempts >= 1, "recordings.max_attempts must be at least 1"),
        (re.fullmatch("[A-Za-z0-9]{1,8}", config.recordings.voicemail_format) is not None,
         "recordings.voicemail_format must be a file format such as 'wav' or 'gsm'"),
        (config.recordings.voicemail_pbx_path.startswith("/"),
         "recordings.voicemail_pbx_path must be an absolute path"),
        (config.demo.call_interval > 0, "demo.call_interval must be positive"),
        (_valid_window(config.campaigns.window_start, config.campaigns.window_end),
         "campaigns.window_start and window_end must be times like 09:00, start before end"),
        (0 <= config.campaigns.per_minute <= 6000,
         "campaigns.per_minute must be between 0 (no limit) and 6000"),
        (1 <= config.campaigns.max_queued <= 1000,
         "campaigns.max_queued must be between 1 and 1000"),
        (config.demo.sms_interval > 0, "demo.sms_interval must be positive"),
    ]
    names = [line.name for line in config.pbx]
    checks.append((len(names) == len(set(names)), "pbx line names must be unique"))
    for i, line in enumerate(config.pbx):
        checks += [(False, f"pbx[{i}].{key} {text}") for key, text in pbx_line_problems(line)]
    fax_names = [line.name for line in config.fax]
    checks.append((len(fax_names) == len(set(fax_names)), "fax line names must be unique"))
    for i, fax in enumerate(config.fax):
        checks += [
            (fax.kind in FAX_KINDS, f"fax[{i}].kind must be one of {', '.join(FAX_KINDS)}"),
            (bool(fax.name.strip()), f"fax[{i}].name must not be empty"),
            # It names a folder and the environment variables of the line's secrets.
            (re.fullmatch(r"[A-Za-z0-9_-]{1,40}", fax.name) is not None,
             f"fax[{i}].name may hold only letters, digits, _ and - (up to 40)"),
            (bool(_CHANNEL_TEMPLATE.match(fax.channel)),
             f"fax[{i}].channel must be a channel such as PJSIP/{{number}}@trunk"),
            (not any(ch in value for ch in "\r\n\x00"
                     for value in (fax.caller_id, fax.header, fax.local_station_id)),
             f"fax[{i}].caller_id, header and local_station_id must be one line each"),
            (1 <= fax.max_attempts <= 20, f"fax[{i}].max_attempts must be between 1 and 20"),
            (fax.retry_seconds >= 0 and fax.retry_backoff >= 1,
             f"fax[{i}].retry_seconds must not be negative and retry_backoff at least 1"),
            (fax.retry_seconds <= 86400 and fax.retry_backoff <= 10,
             f"fax[{i}].retry_seconds must be at most 86400 and retry_backoff at most 10"),
            (1 <= fax.port <= 65535, f"fax[{i}].port must be between 1 and 65535"),
            (fax.channel.count("{number}") == 1,
             f"fax[{i}].channel must contain {{number}} once, such as PJSIP/{{number}}@trunk"),
            (len(fax.local_station_id) <= 20 and "," not in fax.local_station_id + fax.header,
             f"fax[{i}].local_station_id must be up to 20 characters; no commas in it or"
             " in the header"),
            (fax.poll_seconds > 0, f"fax[{i}].poll_seconds must be positive"),
            (0 < fax.dial_timeout <= 3600 and 0 < fax.page_timeout <= 3600,
             f"fax[{i}].dial_timeout and page_timeout must be between 0 and 3600 seconds"),
            (re.fullmatch(r"[fFdz]{0,4}s[fFdz]{0,4}", fax.sendfax_options) is not None,
             f"fax[{i}].sendfax_options must be SendFAX option letters (f, F, d, z) with s"),
            (fax.page_seconds >= 0, f"fax[{i}].page_seconds must not be negative"),
            (fax.transport in ("t38", "g711"), f"fax[{i}].transport must be t38 or g711"),
            (fax.speed >= 0, f"fax[{i}].speed must not be negative"),
        ]
    checks += _sms_checks(config)
    checks += _reports_checks(config)
    checks += _cluster_checks(config)
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{src}: {message}")


def _reports_checks(config: Config) -> list[tuple[bool, str]]:
    import zoneinfo

    reports = config.reports
    zone_ok = True
    if reports.timezone:
        try:
            zoneinfo.ZoneInfo(reports.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone_ok = False
    return [(zone_ok, f"reports.timezone {reports.timezone!r} is not a time zone such as "
                      "Europe/Moscow"),
            (0 < reports.callback_sla_minutes <= 10080,
             "reports.callback_sla_minutes must be between 0 and 10080 (a week)")]


def _cluster_checks(config: Config) -> list[tuple[bool, str]]:
    def network(entry: str) -> bool:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            return False
        return True

    bad = [e for e in config.server.metrics_allow if not network(e)]
    cluster = config.cluster
    return [
        (not bad, f"server.metrics_allow: {bad[0]!r} is not an address or a network such as "
                  "10.0.0.0/8" if bad else ""),
        (2.0 <= cluster.lease_seconds <= 60.0,
         "cluster.lease_seconds must be between 2 and 60"),
        (cluster.outbox_hours > 0, "cluster.outbox_hours must be positive"),
        (len(cluster.instance_id) <= 64 and cluster.instance_id.isprintable(),
         "cluster.instance_id must be up to 64 printable characters"),
    ]


def _valid_window(start: str, end: str) -> bool:
    clock = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
    return bool(clock.fullmatch(start) and clock.fullmatch(end)) and start < end


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _sms_checks(config: Config) -> list[tuple[bool, str]]:
    import zoneinfo

    sms = config.sms
    try:
        zoneinfo.ZoneInfo(sms.timezone)
        zone_ok = True
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone_ok = False
    checks = [
        (zone_ok, f"sms.timezone {sms.timezone!r} is not a time zone such as Europe/Moscow"),
        (sms.validity_hours > 0, "sms.validity_hours must be positive"),
        (sms.max_attempts >= 1, "sms.max_attempts must be at least 1"),
        (sms.retry_seconds > 0, "sms.retry_seconds must be positive"),
        (sms.reassembly_timeout > 0, "sms.reassembly_timeout must be positive"),
        (len(sms.optout_confirmation) <= 160, "sms.optout_confirmation must fit one SMS"),
        (sms.balance_interval >= 0, "sms.balance_interval must not be negative"),
        (all(0 < len(text) <= 1600 for text in sms.templates),
         "sms.templates must be texts of 1 to 1600 characters"),
        (re.fullmatch(r"[0-9*#]{0,20}", sms.balance_ussd) is not None,
         "sms.balance_ussd must be a USSD code such as *100#"),
    ]
    names = [modem.name for modem in config.gsm]
    checks.append((len(names) == len(set(names)), "gsm modem names must be unique"))
    for i, modem in enumerate(config.gsm):
        checks += [
            (bool(modem.name.strip()), f"gsm[{i}].name must not be empty"),
            (bool(modem.device.strip()), f"gsm[{i}].device must be a serial device path"),
            (modem.per_minute >= 1, f"gsm[{i}].per_minute must be at least 1"),
            (modem.per_day >= 1, f"gsm[{i}].per_day must be at least 1"),
            (modem.baudrate > 0, f"gsm[{i}].baudrate must be positive"),
            (re.fullmatch(r"\d{4,8}", modem.pin) is not None or not modem.pin,
             f"gsm[{i}].pin must be 4 to 8 digits"),
            ((modem.window_start == "") == (modem.window_end == ""),
             f"gsm[{i}]: give both window_start and window_end, or neither"),
            (all(not v or _HHMM.match(v) for v in (modem.window_start, modem.window_end)),
             f"gsm[{i}].window_start and window_end must be times such as 08:00"),
        ]
    return checks
def pbx_line_problems(line: PbxLineConfig) -> list[tuple[str, str]]:
    """What is wrong with one PBX line's values, as (key, what it must be): shared by the
    configuration file and the lines page (callcenter/lines/)."""
    checks: list[tuple[bool, str, str]] = [
        (line.kind == "asterisk", "kind", "must be 'asterisk' (the only kind so far)"),
        (1 <= line.port <= 65535, "port", "must be between 1 and 65535"),
        (bool(line.name.strip()), "name", "must not be empty"),
        (line.ping_interval > 0, "ping_interval", "must be positive"),
        (line.action_timeout > 0, "action_timeout", "must be positive"),
        (line.callback_on in CALLBACK_POLICIES, "callback_on",
         f"must be one of {', '.join(CALLBACK_POLICIES)}"),
        (0 < line.withheld_timeout <= 5, "withheld_timeout", "must be between 0 and 5 seconds"),
        (line.dial_format in DIAL_FORMATS, "dial_format",
         f"must be one of {', '.join(DIAL_FORMATS)}"),
        (bool(_DIAL_PREFIX.match(line.dial_prefix)), "dial_prefix",
         "must be up to 8 digits, * or #"),
        (not (line.dial_prefix and line.dial_format == "e164"), "dial_prefix",
         "cannot go before an E.164 number (dial_format = \"e164\")"),
        (bool(_DIAL_PREFIX.match(line.international_prefix)), "international_prefix",
         "must be up to 8 digits, * or #"),
        (not line.originate_channel or (
            line.originate_channel.count("{ext}") == 1
            and bool(_CHANNEL_TEMPLATE.match(line.originate_channel))),
         "originate_channel", "must be a channel with one {ext}, such as "
         "PJSIP/{ext} or Local/{ext}@from-internal"),
    ]
    return [(key, text) for ok, key, text in checks if not ok]
