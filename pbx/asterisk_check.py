"""The live check of an Asterisk line: a short AMI login of its own plus ``CoreSettings``.

It never touches the line's running connection (a second session, logged in with
``Events: off`` so the PBX sends it nothing), and it is closed before the answer is returned.
Every failure is put in words with what to change: refused, timeout, TLS, wrong secret,
missing AMI permission (and the manager.conf lines that grant it).
"""

from __future__ import annotations

import ssl

from callcenter.config import PbxLineConfig
from callcenter.lines.lifecycle import CheckResult
from pbx.ami.codec import ActionEncodingError
from pbx.ami.connection import AmiConnection
from pbx.ami.errors import AmiActionError, AmiAuthError, AmiError, AmiTimeout, AmiUnreachable

CHECK_CONNECT_TIMEOUT = 5.0
CHECK_LOGIN_TIMEOUT = 5.0

# What the product's AMI user needs (read: call events, the resync, CoreSettings; write:
# click-to-call, transfers, recording, trunk admin through GetConfig/UpdateConfig and the
# ModuleLoad reload, which is of class system).
MANAGER_CONF_PERMISSIONS = ("read = call,dialplan,agent,system\n"
                            "write = call,originate,reporting,system,config")


# The actions the product sends, with the write classes Asterisk (22) registers each under:
# ListCommands lists an action only when the user's write= shares one of its classes.
CALL_ACTIONS = {
    "Originate": "originate", "Redirect": "call", "BlindTransfer": "call", "Atxfer": "call",
    "Hangup": "system,call", "MixMonitor": "system,call", "StopMixMonitor": "system,call",
    "Getvar": "call,reporting", "Status": "system,call,reporting",
    "CoreShowChannels": "system,reporting", "CoreSettings": "system,reporting",
}
TRUNK_ACTIONS = {
    "GetConfig": "system,config", "UpdateConfig": "config", "ModuleLoad": "system",
    "PJSIPShowEndpoints": "system", "PJSIPShowRegistrationsOutbound": "system",
    "PJSIPShowContacts": "system",
}


def missing_actions(listed: set[str], needed: dict[str, str]) -> list[str]:
    known = {name.lower() for name in listed}
    return [name for name in needed if name.lower() not in known]


def _needs(missing: list[str], needed: dict[str, str]) -> str:
    return "; ".join(f"{name} needs one of write = {needed[name]}" for name in missing)


def tls_context(config: PbxLineConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    context = ssl.create_default_context()
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _where(config: PbxLineConfig) -> str:
    return f"{config.host}:{config.port}"


async def check_asterisk(config: PbxLineConfig) -> CheckResult:
    conn = AmiConnection(config.host, config.port, config.username, config.secret,
                         events="off", connect_timeout=CHECK_CONNECT_TIMEOUT,
                         login_timeout=CHECK_LOGIN_TIMEOUT,
                         action_timeout=min(config.action_timeout, 10.0),
                         ping_interval=3600.0, ssl=tls_context(config))
    try:
        await conn.start()
        settings = await conn.action("CoreSettings")
        # ListCommands (open to every user) names the actions this user may send.
        commands = await conn.action("ListCommands", check=False)
    except AmiUnreachable as exc:
        return _unreachable(config, exc)
    except AmiAuthError:
        return CheckResult(
            False, "login refused",
            error=f"the PBX at {_where(config)} refused the login of AMI user "
                  f"{config.username!r}: wrong username or secret",
            hint=f"in manager.conf the section [{config.username}] must have this secret "
                 "(and a permit= matching this server's address)")
    except AmiActionError as exc:
        message = exc.response.get("Message") or "refused"
        if "permission" in message.lower():
            return CheckResult(
                False, "missing AMI permission",
                error=f"AMI user {config.username!r} may log in but not ask CoreSettings "
                      f"({message})",
                hint=f"in manager.conf, section [{config.username}], put: "
                     + MANAGER_CONF_PERMISSIONS.replace("\n", "; ")
                     + "; then run 'manager reload'")
        return CheckResult(False, "CoreSettings refused",
                           error=f"the PBX refused CoreSettings: {message}")
    except AmiTimeout as exc:
        return CheckResult(False, "timeout",
                           error=f"{_where(config)} accepted the connection but did not "
                                 f"answer as Asterisk AMI does ({exc})",
                           hint="is this the AMI port (manager.conf [general] port, 5038; "
                                "5039 with TLS)?")
    except AmiError as exc:
        return CheckResult(False, "failed", error=f"the AMI session at {_where(config)} "
                                                  f"failed: {exc}")
    except ActionEncodingError:
        # Not the exception's text: it may quote the secret.
        return CheckResult(False, "bad setting",
                           error="the AMI user or secret has a line break, which AMI cannot "
                                 "carry")
    finally:
        await conn.close()
    version = settings.get("AsteriskVersion") or "?"
    ami = settings.get("AMIversion") or "?"
    facts = {"Asterisk": version, "AMI": ami, "system": settings.get("SystemName") or ""}
    summary = f"Asterisk {version}, AMI {ami}"
    if (commands.response or "").lower() != "success":
        return CheckResult(True, summary, facts)
    listed = set(commands.headers)
    fix = (f"in manager.conf, section [{config.username}], put: "
           + MANAGER_CONF_PERMISSIONS.replace("\n", "; ") + "; then run 'manager reload' "
           "(the read= classes, the events, cannot be checked this way)")
    missing = missing_actions(listed, CALL_ACTIONS)
    if missing:
        return CheckResult(
            False, "missing AMI permission", facts,
            error=f"AMI user {config.username!r} may not send {', '.join(missing)}: "
                  + _needs(missing, CALL_ACTIONS), hint=fix)
    missing = missing_actions(listed, TRUNK_ACTIONS)
    if missing:  # calls work; only the trunks on the lines page do not
        facts["trunks"] = "unavailable: " + _needs(missing, TRUNK_ACTIONS)
        return CheckResult(True, summary + f"; no trunk administration (AMI user "
                           f"{config.username!r} may not send {', '.join(missing)})", facts,
                           hint=fix)
    return CheckResult(True, summary, facts)


def _unreachable(config: PbxLineConfig, exc: AmiUnreachable) -> CheckResult:
    cause = exc.__cause__
    if isinstance(cause, ConnectionRefusedError):
        return CheckResult(
            False, "connection refused",
            error=f"connection refused by {_where(config)}: nothing listens there",
            hint="is Asterisk running with AMI on (manager.conf [general]: enabled = yes, "
                 f"port = {config.port}, bindaddr reachable from here)?")
    if isinstance(cause, TimeoutError):
        return CheckResult(
            False, "timeout",
            error=f"no answer from {_where(config)} within {CHECK_CONNECT_TIMEOUT:g} s",
            hint="check the host name, the port and the firewall between here and the PBX")
    if isinstance(cause, ssl.SSLError):
        return CheckResult(
            False, "TLS failed",
            error=f"the TLS handshake with {_where(config)} failed: {cause}",
            hint="manager.conf needs tlsenable = yes; switch 'verify certificate' off for a "
                 "self-signed certificate, or TLS off for a plain AMI port")
    return CheckResult(False, "unreachable", error=str(exc),
                       hint="check the host name and the port")
