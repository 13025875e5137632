"""Example answers of the Google Calendar actions (the ``data``), recorded from the fake,
with the account's names and ids replaced and lists cut to one item. The OpenAPI document
shows them; each must pass its action's output_schema."""

from typing import Any

EVENT: dict[str, Any] = {
    "kind": "calendar#event",
    "etag": "\"1796382550487635001\"",
    "id": "0gddj8s83cp248c4hjuujc2ure",
    "status": "confirmed",
    "htmlLink": "https://www.google.com/calendar/event?eid=MGdkZGo4czgzY3AyNDhjNGhqdXVqYzJ1cmUgYWRhQGV4YW1wbGUuY29t",
    "created": "2026-12-04T11:09:10.487Z",
    "updated": "2026-12-04T11:09:10.487Z",
    "creator": {"email": "alan@example.com", "self": True},
    "organizer": {"email": "alan@example.com", "self": True},
    "iCalUID": "0gddj8s83cp248c4hjuujc2ure@google.com",
    "sequence": 0,
    "reminders": {"useDefault": True},
    "eventType": "default",
    "summary": "Sprint planning",
    "location": "Room 4.12",
    "start": {"dateTime": "2026-03-30T10:00:00+02:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2026-03-30T11:00:00+02:00", "timeZone": "Europe/Berlin"},
    "attendees": [{"email": "grace@example.com", "responseStatus": "needsAction"}],
}

ANSWERS: dict[str, Any] = {
    "list_calendars": {
        "items": [
            {
                "kind": "calendar#calendarListEntry",
                "etag": "\"1700000000000015\"",
                "id": "alan@example.com",
                "summary": "alan@example.com",
                "timeZone": "Europe/Berlin",
                "colorId": "14",
                "backgroundColor": "#9fe1e7",
                "foregroundColor": "#000000",
                "selected": True,
                "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}],
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
                "primary": True,
                "notificationSettings": {"notifications": [{"type": "eventCreation", "method": "email"}]},
            },
        ],
        "nextPageToken": None,
    },
    "list_events": {"items": [], "nextPageToken": None, "timeZone": "Europe/Berlin"},
    "create_event": EVENT,
    "update_event": {**EVENT, "summary": "Planning (moved)"},
    "delete_event": {"deleted": True, "id": "0gddj8s83cp248c4hjuujc2ure"},
    "availability": {
        "timeZone": "Europe/Berlin",
        "slots": [{"start": "2026-03-30T09:00:00+02:00", "end": "2026-03-30T10:00:00+02:00", "minutes": 60}],
        "busy": [{"start": "2026-03-30T08:00:00Z", "end": "2026-03-30T09:00:00Z"}],
    },
    "sync": {
        "calendarId": "primary",
        "incremental": False,
        "fullResync": False,
        "changed": 1,
        "deleted": 0,
        "events": [
            EVENT,
        ],
        "deletedIds": [],
    },
    "watch_calendar": {
        "channelId": "6f1c2b0e-3d4a-4c5b-9e8f-0a1b2c3d4e5f",
        "calendarId": "primary",
        "resourceId": "4b1e0c9d8a7f6e5d4c3b2a19081",
        "expiresAt": "2026-12-11T11:09:10.487000Z",
    },
    "unwatch_calendar": {"calendarId": "primary", "stopped": ["6f1c2b0e-3d4a-4c5b-9e8f-0a1b2c3d4e5f"]},
}
