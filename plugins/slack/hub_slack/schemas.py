"""Input schemas of the Slack actions (JSON Schema): they validate requests before any
call reaches Slack and describe the actions in the hub's OpenAPI document."""

CHANNEL_ID = {"type": "string", "minLength": 1, "maxLength": 80, "description": "channel id (C…) or name (#general)"}

MESSAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["channel"],
    "anyOf": [{"title": "WithText", "required": ["text"]}, {"title": "WithBlocks", "required": ["blocks"]}],
    "properties": {
        "channel": CHANNEL_ID,
        "text": {"type": "string", "minLength": 1, "maxLength": 40000},
        "blocks": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "object", "required": ["type"]}},
        "thread_ts": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$", "maxLength": 32, "description": "reply in this thread"},
        "reply_broadcast": {"type": "boolean"},
        "mrkdwn": {"type": "boolean"},
        "unfurl_links": {"type": "boolean"},
        "unfurl_media": {"type": "boolean"},
    },
}

CHANNELS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "types": {
            "type": "array",
            "items": {"enum": ["public_channel", "private_channel", "mpim", "im"]},
            "uniqueItems": True,
            "maxItems": 4,
            "description": "comma-separated in the query string; default public_channel",
        },
        "exclude_archived": {"type": "boolean"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        "cursor": {"type": "string", "minLength": 1, "maxLength": 500, "description": "nextCursor of the previous page"},
    },
}

USER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user_id"],
    "properties": {"user_id": {"type": "string", "pattern": "^[UWB][A-Z0-9]{2,20}$", "maxLength": 21, "description": "Slack user id"}},
}

# --- what the actions answer (the `data` of the hub's answer) ----------------------------

TS = {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$", "description": "a message timestamp, its id within the channel"}
TEXT_VALUE = {"type": "object", "properties": {"value": {"type": "string"}}}

POSTED = {
    "type": "object",
    "required": ["channel", "ts", "message"],
    "properties": {
        "channel": {"type": "string", "description": "the channel's id, even when a name was given"},
        "ts": TS,
        "message": {
            "type": "object",
            "required": ["type", "ts"],
            "properties": {
                "type": {"const": "message"},
                "text": {"type": "string"},
                "ts": TS,
                "user": {"type": "string"},
                "bot_id": {"type": "string"},
                "thread_ts": TS,
                "blocks": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}

CHANNEL = {
    "type": "object",
    "required": ["id"],  # a direct message (im) has a user instead of a name
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "is_channel": {"type": "boolean"},
        "is_private": {"type": "boolean"},
        "is_archived": {"type": "boolean"},
        "is_member": {"type": "boolean"},
        "created": {"type": "integer"},
        "num_members": {"type": "integer", "minimum": 0},
        "topic": TEXT_VALUE,
        "purpose": TEXT_VALUE,
    },
}

CHANNEL_PAGE = {
    "type": "object",
    "required": ["channels", "nextCursor"],
    "properties": {
        "channels": {"type": "array", "items": CHANNEL},
        "nextCursor": {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"},
    },
}

USER_INFO = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {
        "id": {"type": "string", "pattern": "^[UWB][A-Z0-9]+$"},
        "team_id": {"type": "string"},
        "name": {"type": "string"},
        "real_name": {"type": "string"},
        "deleted": {"type": "boolean"},
        "is_bot": {"type": "boolean"},
        "tz": {"type": "string"},
        "profile": {
            "type": "object",
            "properties": {
                "email": {"type": "string"},
                "display_name": {"type": "string"},
                "real_name": {"type": "string"},
                "image_72": {"type": "string"},
            },
        },
    },
}

# --- example inputs: the sandbox's fake workspace holds these channels and users ----------

MESSAGE_EXAMPLES = (
    {"channel": "C0000000001", "text": "Deploy finished: version 2.4.1 is live."},
    {
        "channel": "#general",
        "text": "Weekly report: 12 issues closed",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Weekly report*: 12 issues closed"}}],
        "unfurl_links": False,
    },
)
# Examples run with the default scopes, which read public channels only (private ones need groups:read).
CHANNELS_EXAMPLES = ({}, {"types": ["public_channel"], "exclude_archived": True, "limit": 200})
USER_EXAMPLES = ({"user_id": "U0000000001"},)
