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
    "oneOf": [{"required": ["dateTime"]}, {"required": ["date"]}],
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
