"""The REST route table, with the metadata the OpenAPI document is generated from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ui.api import calls, campaigns, clients, session, sms, tasks, users
from ui.api import campaign_models as cm
from ui.api import models as m
from ui.api import sms_models as sm


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


ROUTES: list[ApiRoute] = [
    ApiRoute("POST", "/api/session", session.login, "Log in (sets the session cookie)",
             "session", m.Login, "Session", public=True),
    ApiRoute("GET", "/api/session", session.whoami, "The logged-in user and CSRF token",
             "session", None, "Session"),
    ApiRoute("DELETE", "/api/session", session.logout, "Log out", "session", None,
             "ActionResult"),
    ApiRoute("GET", "/api/users", users.list_users, "List users", "users", None, "[User]"),
    ApiRoute("POST", "/api/users", users.create_user, "Create a user (admin)", "users",
             m.UserCreate, "User", status=201),
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
             "clients", None, "Deleted"),
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
             m.CustomFieldIn, "CustomField", status=201),
    ApiRoute("DELETE", "/api/custom-fields/{id}", clients.delete_custom_field,
             "Delete a custom field and its values (admin)", "custom fields", None, "Deleted"),
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
    ApiRoute("GET", "/api/lines", calls.lines, "PBX line status (admin)", "calls"),
    ApiRoute("GET", "/api/recordings/{id}", calls.get_recording,
             "A call recording (audio/wav; supports Range requests)", "calls",
             extra={"responses": {"200": {"description": "audio", "content": {
                 "audio/wav": {}}}, "206": {"description": "partial audio"},
                 "default": {"description": "error"}}}),
]

ROUTES += [
    ApiRoute("POST", "/api/sms", sms.send,
             "Send an SMS (queued as a durable job; answers the part counter too)", "sms",
             sm.SmsSendIn, status=201),
    ApiRoute("POST", "/api/sms/count", sms.count,
             "Count characters and parts of a text (GSM 7-bit or UCS2)", "sms", sm.SmsCountIn),
    ApiRoute("GET", "/api/sms", sms.list_sms, "SMS in and out, newest first", "sms", None,
             None, sm.SmsQuery),
    ApiRoute("GET", "/api/sms/templates", sms.templates,
             "Ready-made SMS texts (with {client.name}, {contact.name} placeholders)", "sms"),
    ApiRoute("GET", "/api/sms/pool", sms.pool_status,
             "The modem pool: signal, operator, balance, queue, sent today, last error", "sms"),
    ApiRoute("GET", "/api/sms/optout", sms.optout_list, "The do-not-send list (admin)", "sms"),
    ApiRoute("POST", "/api/sms/optout", sms.optout_change,
             "Put a number on the do-not-send list or take it off (admin)", "sms",
             sm.OptOutIn),
    ApiRoute("POST", "/api/sms/{id}/resend", sms.resend,
             "Send a failed, expired or unknown SMS again, as a new job (a person decides)",
             "sms", sm.SmsResendIn, status=201),
    ApiRoute("GET", "/api/sms/{id}", sms.get_sms, "One SMS with the state of every part",
             "sms"),
    ApiRoute("GET", "/api/clients/{id}/sms", sms.client_sms, "A client's SMS, newest first",
             "sms"),
]

ROUTES += [
    ApiRoute("GET", "/api/campaigns", campaigns.list_campaigns,
             "SMS campaigns (admin: all; manager: their own)", "campaigns"),
    ApiRoute("POST", "/api/campaigns", campaigns.create_campaign,
             "Create a campaign draft (admin, or a manager for their own clients)", "campaigns",
             cm.CampaignIn, status=201),
    ApiRoute("POST", "/api/campaigns/preview", campaigns.preview_new,
             "Preview an unsaved campaign: recipient count and a few rendered messages",
             "campaigns", cm.CampaignIn),
    ApiRoute("GET", "/api/campaigns/fields", campaigns.fields,
             "The fields a campaign template may use", "campaigns"),
    ApiRoute("GET", "/api/campaigns/{id}", campaigns.get_campaign,
             "One campaign with its recipient counts", "campaigns"),
    ApiRoute("PATCH", "/api/campaigns/{id}", campaigns.update_campaign,
             "Change a campaign draft", "campaigns", cm.CampaignUpdate),
    ApiRoute("DELETE", "/api/campaigns/{id}", campaigns.delete_campaign,
             "Delete a campaign draft", "campaigns", None, "Deleted"),
    ApiRoute("GET", "/api/campaigns/{id}/preview", campaigns.preview,
             "Recipient count and a few rendered messages with encoding and parts",
             "campaigns"),
    ApiRoute("POST", "/api/campaigns/{id}/start", campaigns.start,
             "Start: every recipient is written with its message, then sending begins",
             "campaigns"),
    ApiRoute("POST", "/api/campaigns/{id}/pause", campaigns.pause,
             "Pause (messages still waiting in the SMS queue are taken back)", "campaigns"),
    ApiRoute("POST", "/api/campaigns/{id}/resume", campaigns.resume, "Resume a paused campaign",
             "campaigns"),
    ApiRoute("POST", "/api/campaigns/{id}/cancel", campaigns.cancel,
             "Cancel (queued messages cancelled; those a modem has are left to finish)",
             "campaigns"),
    ApiRoute("GET", "/api/campaigns/{id}/progress", campaigns.progress,
             "Totals and per-recipient status with per-part delivery", "campaigns", None, None,
             cm.ProgressQuery),
    ApiRoute("GET", "/api/campaigns/{id}/report.csv", campaigns.report_csv,
             "The report as CSV (spreadsheet-safe cells)", "campaigns",
             extra={"responses": {"200": {"description": "CSV", "content": {
                 "text/csv": {}}}, "default": {"description": "error"}}}),
]
