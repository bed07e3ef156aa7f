"""The REST route table, with the metadata the OpenAPI document is generated from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ui.api import admin_models as am
from ui.api import audit, calls, clients, lines, routing, session, tasks, users
from ui.api import models as m


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    endpoint: Callable[..., Any]
    summary: str
    tag: str
    body: type[BaseModel] | None = None  # the model that validates the JSON body
    response: str | None = None  # schema name; "[X]" for a list of X
    query: type[BaseModel] | None = None  # the model that validates the query string
    status: int = 200
    public: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # Admins only: enforced for the whole route before its handler runs (ui.app._bound), and
    # walked by tests/admin/test_admin_routes.py with a secretary's and a manager's session.
    admin: bool = False


ROUTES: list[ApiRoute] = [
    ApiRoute("POST", "/api/session", session.login, "Log in (sets the session cookie)",
             "session", m.Login, "Session", public=True),
    ApiRoute("GET", "/api/session", session.whoami, "The logged-in user and CSRF token",
             "session", None, "Session"),
    ApiRoute("DELETE", "/api/session", session.logout, "Log out", "session", None,
             "ActionResult"),
    ApiRoute("GET", "/api/users", users.list_users, "List users", "users", None, "[User]"),
    ApiRoute("POST", "/api/users", users.create_user, "Create a user (admin)", "users",
             m.UserCreate, "User", status=201, admin=True),
    ApiRoute("GET", "/api/users/{id}", users.get_user, "One user", "users", None, "User"),
    ApiRoute("PATCH", "/api/users/{id}", users.update_user,
             "Change a user (admin; anyone: own name, password, language)", "users",
             m.UserUpdate, "User"),
    ApiRoute("GET", "/api/clients", clients.list_clients, "List or search clients", "clients",
             None, "[Client]", m.ClientsQuery),
    ApiRoute("POST", "/api/clients", clients.create_client,
             "Create a client with contacts and phones", "clients", m.ClientCreate, "Client",
             status=201),
    ApiRoute("GET", "/api/clients/{id}", clients.get_client, "One client with contacts",
             "clients", None, "Client"),
    ApiRoute("PATCH", "/api/clients/{id}", clients.update_client, "Change a client", "clients",
             m.ClientUpdate, "Client"),
    ApiRoute("DELETE", "/api/clients/{id}", clients.delete_client, "Delete a client (admin)",
             "clients", None, "Deleted", admin=True),
    ApiRoute("GET", "/api/clients/{id}/interactions", clients.list_interactions,
             "Interaction history (calls, SMS, faxes, notes), newest first", "clients", None,
             "[Interaction]", m.InteractionsQuery),
    ApiRoute("POST", "/api/clients/{id}/notes", clients.add_note, "Add a note", "clients",
             m.NoteIn, "Interaction", status=201),
    ApiRoute("POST", "/api/clients/{id}/contacts", clients.add_contact, "Add a contact",
             "contacts", m.ContactIn, "Contact", status=201),
    ApiRoute("PATCH", "/api/contacts/{id}", clients.update_contact, "Change a contact",
             "contacts", m.ContactUpdate, "Contact"),
    ApiRoute("DELETE", "/api/contacts/{id}", clients.delete_contact, "Delete a contact",
             "contacts", None, "Deleted"),
    ApiRoute("POST", "/api/contacts/{id}/phones", clients.add_phone, "Add a phone number",
             "contacts", m.PhoneIn, "Phone", status=201),
    ApiRoute("DELETE", "/api/phones/{id}", clients.delete_phone, "Delete a phone number",
             "contacts", None, "Deleted"),
    ApiRoute("GET", "/api/custom-fields", clients.list_custom_fields, "List custom fields",
             "custom fields", None, "[CustomField]"),
    ApiRoute("POST", "/api/custom-fields", clients.create_custom_field,
             "Add a custom field (admin; no migration needed)", "custom fields",
             m.CustomFieldIn, "CustomField", status=201, admin=True),
    ApiRoute("DELETE", "/api/custom-fields/{id}", clients.delete_custom_field,
             "Delete a custom field and its values (admin)", "custom fields", None, "Deleted",
             admin=True),
    ApiRoute("GET", "/api/lookup", clients.lookup, "Match a phone number to contacts or a user",
             "clients", None, "Lookup", m.LookupQuery),
    ApiRoute("GET", "/api/tasks", tasks.list_tasks, "List tasks", "tasks", None, "[Task]",
             m.TasksQuery),
    ApiRoute("POST", "/api/tasks", tasks.create_task, "Create a task", "tasks", m.TaskCreate,
             "Task", status=201),
    ApiRoute("PATCH", "/api/tasks/{id}", tasks.update_task, "Change a task, mark done or undo",
             "tasks", m.TaskUpdate, "Task"),
    ApiRoute("GET", "/api/calls/live", calls.live_calls, "Live calls with their screen-pop data",
             "calls", None, "[LiveCall]"),
    ApiRoute("GET", "/api/calls", calls.list_calls, "The call log, newest first", "calls", None,
             "[Call]", m.CallsQuery),
    ApiRoute("GET", "/api/calls/{call_id}", calls.get_call, "One call of the log", "calls",
             None, "Call"),
    ApiRoute("POST", "/api/calls/{call_id}/transfer", calls.transfer,
             "Transfer a live call (blind, attended, or redirect while ringing)", "calls",
             m.TransferIn, "ActionResult"),
    ApiRoute("POST", "/api/calls/{call_id}/hangup", calls.hangup, "Hang up a live call",
             "calls", None, "ActionResult"),
    ApiRoute("POST", "/api/calls/{call_id}/recording", calls.recording,
             "Start or stop recording a live call", "calls", m.RecordingIn, "ActionResult"),
    ApiRoute("POST", "/api/originate", calls.originate,
             "Click-to-call: ring my phone, then the number", "calls", m.OriginateIn,
             "ActionResult"),
    ApiRoute("GET", "/api/presence", calls.presence,
             "Extensions busy or ringing now (others are free)", "calls"),
    ApiRoute("GET", "/api/lines", calls.lines, "PBX line status (admin)", "calls", admin=True),
    ApiRoute("GET", "/api/recordings/{id}", calls.get_recording,
             "A call recording (audio/wav; supports Range requests)", "calls",
             extra={"responses": {"200": {"description": "audio", "content": {
                 "audio/wav": {}}}, "206": {"description": "partial audio"},
                 "default": {"description": "error"}}}),
    ApiRoute("POST", "/api/users/{id}/password", users.reset_password,
             "Set a new password for a user; their sessions end (admin)", "users",
             am.PasswordReset, "ActionResult", admin=True),
    ApiRoute("POST", "/api/users/{id}/handover", users.handover,
             "Hand a user's open tasks and clients to another user in one step (admin)",
             "users", am.HandoverIn, admin=True),
    ApiRoute("GET", "/api/audit", audit.list_audit,
             "The audit log, newest first: who changed what, when, from where (admin)",
             "audit", None, None, am.AuditQuery, admin=True),
    ApiRoute("GET", "/api/audit.csv", audit.export_audit,
             "The audit log as CSV, with the same filters (admin)", "audit", None, None,
             am.AuditQuery, admin=True,
             extra={"responses": {"200": {"description": "CSV", "content": {
                 "text/csv": {}}}, "default": {"description": "error"}}}),
    ApiRoute("GET", "/api/routing", routing.get_routing,
             "Secretary groups, default region and office hours (admin)", "routing",
             admin=True),
    ApiRoute("POST", "/api/routing/groups", routing.create_group,
             "Add a secretary group with its DIDs, queues and lines (admin)", "routing",
             am.GroupIn, status=201, admin=True),
    ApiRoute("PATCH", "/api/routing/groups/{id}", routing.update_group,
             "Replace a secretary group: members, DIDs, queues, lines (admin)", "routing",
             am.GroupIn, admin=True),
    ApiRoute("DELETE", "/api/routing/groups/{id}", routing.delete_group,
             "Delete a secretary group (admin)", "routing", None, "Deleted", admin=True),
    ApiRoute("PATCH", "/api/routing/settings", routing.update_settings,
             "Set the default region and the office hours; stored values win over the"
             " file (admin)", "routing", am.RoutingSettingsIn, admin=True),
    ApiRoute("GET", "/api/routing/endpoints", routing.endpoints,
             "The PBX's extension endpoints and the user mapped to each (admin)", "routing",
             admin=True),
    ApiRoute("POST", "/api/routing/extensions", routing.assign_extensions,
             "Map extensions to users, e.g. as imported from the endpoint list (admin)",
             "routing", am.ExtensionsIn, "[User]", admin=True),
    # -- lines and trunks (admin only) --------------------------------------------------------
    ApiRoute("GET", "/api/admin/line-kinds", lines.kinds,
             "Line kinds and their settings (admin)", "lines", admin=True),
    ApiRoute("GET", "/api/admin/lines", lines.list_lines,
             "Lines with their status; secrets never (admin)", "lines", admin=True),
    ApiRoute("POST", "/api/admin/lines", lines.add_line,
             "Add a line: checked first, saved disabled only on request (admin)", "lines",
             m.LineIn, status=201, admin=True),
    ApiRoute("POST", "/api/admin/lines/check", lines.check_line,
             "Test connection of an unsaved line (admin)", "lines", m.LineCheckIn,
             admin=True),
    ApiRoute("GET", "/api/admin/lines/{name}", lines.get_line, "One line (admin)", "lines",
             admin=True),
    ApiRoute("PATCH", "/api/admin/lines/{name}", lines.update_line,
             "Edit, enable or disable a line; applied without a restart (admin)", "lines",
             m.LineUpdate, admin=True),
    ApiRoute("DELETE", "/api/admin/lines/{name}", lines.delete_line,
             "Delete a line (its connection is closed) (admin)", "lines", None, "Deleted",
             admin=True),
    ApiRoute("GET", "/api/admin/lines/{name}/trunks", lines.trunks,
             "SIP trunks, registrations and contacts of an Asterisk line (admin)", "lines",
             admin=True),
    ApiRoute("GET", "/api/admin/lines/{name}/trunks/live", lines.trunks_live,
             "Trunk states from the latest Registry/ContactStatus events (admin)", "lines",
             admin=True),
    ApiRoute("PUT", "/api/admin/lines/{name}/trunks/{trunk}", lines.save_trunk,
             "Add or edit a SIP trunk and its registration in pjsip.conf (admin)", "lines",
             m.TrunkIn, admin=True),
    ApiRoute("GET", "/api/admin/lines/{name}/endpoints", lines.endpoints,
             "The PBX's PJSIP endpoints with their contacts (admin)", "lines", admin=True),
]
