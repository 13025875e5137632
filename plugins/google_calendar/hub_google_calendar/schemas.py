"""Input schemas of the Google Calendar actions."""

INSTANT = {"type": "string", "format": "date-time", "maxLength": 64, "description": "RFC 3339 with an offset, e.g. 2026-03-30T09:00:00+02:00"}
# A calendar id becomes a segment of the request path: "." and "..", a "/" or "\\", and the
# percent-encodings of those would take the request elsewhere on Google's host.
CALENDAR_ID = {
    "type": "string", "minLength": 1, "maxLength": 1024, "default": "primary",
    "pattern": r"^(?!\.{1,2}$)(?![\s\S]*%(?:2[eEfF]|5[cC]))[^/\\]+$",
    "description": "calendar id; 'primary' for the user's own",
}
EVENT_ID = {"type": "string", "pattern": "^[a-v0-9]{5,1024}$", "maxLength": 1024, "description": "a Calendar event id (base32hex)"}
PAGE_TOKEN = {"type": "string", "minLength": 1, "maxLength": 2048}
TIME_ZONE = {"type": "string", "minLength": 1, "maxLength": 64, "description": "an IANA time zone such as Europe/Berlin"}

WHEN = {
    "type": "object",
    "additionalProperties": False,
    "title": "EventTime",
    "oneOf": [{"title": "WithDateTime", "required": ["dateTime"]}, {"title": "WithDate", "required": ["date"]}],
    "properties": {
        "dateTime": INSTANT,
        "date": {"type": "string", "format": "date", "maxLength": 10, "description": "all-day (the end date is exclusive)"},
        "timeZone": TIME_ZONE,
    },
}
ATTENDEES = {
    "type": "array",
    "maxItems": 200,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["email"],
        "properties": {"email": {"type": "string", "format": "email", "maxLength": 320}, "optional": {"type": "boolean"}, "displayName": {"type": "string", "maxLength": 200}},
    },
}
EVENT_FIELDS = {
    "summary": {"type": "string", "maxLength": 1024},
    "description": {"type": "string", "maxLength": 8192},
    "location": {"type": "string", "maxLength": 1024},
    "start": WHEN,
    "end": WHEN,
    "attendees": ATTENDEES,
}
SEND_UPDATES = {"enum": ["all", "externalOnly", "none"]}

CALENDARS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"pageToken": PAGE_TOKEN, "maxResults": {"type": "integer", "minimum": 1, "maximum": 250}},
}

EVENTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "calendarId": CALENDAR_ID,
        "timeMin": INSTANT,
        "timeMax": INSTANT,
        "q": {"type": "string", "maxLength": 1024},
        "singleEvents": {"type": "boolean"},
        "orderBy": {"enum": ["startTime", "updated"]},
        "pageToken": PAGE_TOKEN,
        "maxResults": {"type": "integer", "minimum": 1, "maximum": 2500},
        "timeZone": TIME_ZONE,
    },
}

CREATE_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["start", "end"],
    "properties": {"calendarId": CALENDAR_ID, "sendUpdates": SEND_UPDATES, **EVENT_FIELDS},
}

PATCH_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id"],
    "minProperties": 2,
    "properties": {"event_id": EVENT_ID, "calendarId": CALENDAR_ID, "sendUpdates": SEND_UPDATES, **EVENT_FIELDS},
}

DELETE_EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id"],
    "properties": {"event_id": EVENT_ID, "calendarId": CALENDAR_ID, "sendUpdates": SEND_UPDATES},
}

CLOCK = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "maxLength": 5}
AVAILABILITY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["timeMin", "timeMax"],
    "properties": {
        "timeMin": INSTANT,
        "timeMax": INSTANT,
        "timeZone": {**TIME_ZONE, "description": "working hours are read in this zone (default: the primary calendar's)"},
        "calendarIds": {"type": "array", "items": CALENDAR_ID, "minItems": 1, "maxItems": 20, "uniqueItems": True},
        "workdayStart": {**CLOCK, "description": "HH:MM, default 09:00"},
        "workdayEnd": {**CLOCK, "description": "HH:MM, default 17:00"},
        "workingDays": {
            "type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}, "minItems": 1, "maxItems": 7, "uniqueItems": True,
            "description": "0 = Monday ... 6 = Sunday; default Monday to Friday",
        },
        "minimumMinutes": {"type": "integer", "minimum": 5, "maximum": 1440, "description": "default 30"},
    },
}

SYNC = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"calendarId": CALENDAR_ID, "full": {"type": "boolean", "description": "drop the sync token and start over"}},
}

# --- what the actions answer (the `data` of the hub's answer) ----------------------------

NEXT_PAGE = {"type": ["string", "null"], "description": "pass as pageToken for the next page; null on the last"}
MOMENT_OUT = {
    "type": "object",
    "title": "EventTimeAnswer",
    "anyOf": [{"title": "WithDateTime", "required": ["dateTime"]}, {"title": "WithDate", "required": ["date"]}],
    "properties": {"dateTime": {"type": "string"}, "date": {"type": "string"}, "timeZone": {"type": "string"}},
}
EVENT = {
    "type": "object",
    "required": ["id", "status", "start", "end"],
    "properties": {
        "kind": {"const": "calendar#event"},
        "id": {"type": "string"},
        "status": {"enum": ["confirmed", "tentative", "cancelled"]},
        "htmlLink": {"type": "string"},
        "created": {"type": "string"},
        "updated": {"type": "string"},
        "summary": {"type": "string"},
        "description": {"type": "string"},
        "location": {"type": "string"},
        "start": MOMENT_OUT,
        "end": MOMENT_OUT,
        "attendees": {
            "type": "array",
            "items": {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}, "responseStatus": {"type": "string"}, "optional": {"type": "boolean"}}},
        },
        "organizer": {"type": "object", "properties": {"email": {"type": "string"}}},
        "recurrence": {"type": "array", "items": {"type": "string"}},
        "recurringEventId": {"type": "string"},
        "iCalUID": {"type": "string"},
        "sequence": {"type": "integer"},
    },
}
CALENDAR_PAGE = {
    "type": "object",
    "required": ["items", "nextPageToken"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "summary"],
                "properties": {
                    "id": {"type": "string"},
                    "summary": {"type": "string"},
                    "timeZone": {"type": "string"},
                    "accessRole": {"enum": ["freeBusyReader", "reader", "writer", "owner"]},
                    "primary": {"type": "boolean"},
                    "backgroundColor": {"type": "string"},
                },
            },
        },
        "nextPageToken": NEXT_PAGE,
    },
}
EVENT_PAGE = {
    "type": "object",
    "required": ["items", "nextPageToken", "timeZone"],
    "properties": {"items": {"type": "array", "items": EVENT}, "nextPageToken": NEXT_PAGE, "timeZone": {"type": ["string", "null"]}},
}
DELETED = {"type": "object", "required": ["deleted", "id"], "properties": {"deleted": {"const": True}, "id": {"type": "string"}}}
SPAN = {"type": "object", "required": ["start", "end"], "properties": {"start": {"type": "string"}, "end": {"type": "string"}}}
FREE_SLOTS = {
    "type": "object",
    "required": ["timeZone", "slots", "busy"],
    "properties": {
        "timeZone": {"type": "string"},
        "slots": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["start", "end", "minutes"],
                "properties": {"start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"}, "minutes": {"type": "integer", "minimum": 0}},
            },
        },
        "busy": {"type": "array", "items": SPAN},
    },
}
SYNCED = {
    "type": "object",
    "required": ["calendarId", "incremental", "fullResync", "changed", "deleted", "events", "deletedIds"],
    "properties": {
        "calendarId": {"type": "string"},
        "incremental": {"type": "boolean", "description": "changes since the stored sync token, not everything"},
        "fullResync": {"type": "boolean", "description": "Google had forgotten the sync token (410): everything again"},
        "changed": {"type": "integer", "minimum": 0},
        "deleted": {"type": "integer", "minimum": 0},
        "events": {"type": "array", "items": EVENT},
        "deletedIds": {"type": "array", "items": {"type": "string"}},
    },
}

# --- example inputs ----------------------------------------------------------------------

AN_EVENT = "4j5p0ts8qlbne2b6u1lbc9dm3k"  # an event id as Google makes them (base32hex)
WEEK = {"timeMin": "2026-03-30T00:00:00+02:00", "timeMax": "2026-04-06T00:00:00+02:00"}
BERLIN = "Europe/Berlin"

CALENDARS_EXAMPLES = ({}, {"maxResults": 10})
EVENTS_EXAMPLES = ({"calendarId": "primary", **WEEK, "singleEvents": True, "orderBy": "startTime"}, {"q": "planning", "maxResults": 50})
CREATE_EVENT_EXAMPLES = (
    {
        "summary": "Sprint planning",
        "location": "Room 4.12",
        "start": {"dateTime": "2026-03-30T10:00:00+02:00", "timeZone": BERLIN},
        "end": {"dateTime": "2026-03-30T11:00:00+02:00", "timeZone": BERLIN},
        "attendees": [{"email": "grace@example.com"}],
        "sendUpdates": "none",
    },
    {"summary": "Team offsite", "start": {"date": "2026-04-16"}, "end": {"date": "2026-04-18"}},  # all-day: the end is exclusive
)
PATCH_EVENT_EXAMPLES = ({"event_id": AN_EVENT, "summary": "Sprint planning (new room)", "location": "Room 2.03"},)
DELETE_EVENT_EXAMPLES = ({"event_id": AN_EVENT, "sendUpdates": "none"},)
AVAILABILITY_EXAMPLES = (
    {**WEEK, "timeZone": BERLIN},
    {**WEEK, "calendarIds": ["primary"], "workdayStart": "10:00", "workdayEnd": "16:00", "workingDays": [0, 1, 2, 3], "minimumMinutes": 45},
)
SYNC_EXAMPLES = ({}, {"calendarId": "primary", "full": True})
