"""Input schemas of the Slack actions (JSON Schema): they validate requests before any
call reaches Slack and describe the actions in the hub's OpenAPI document."""

CHANNEL_ID = {"type": "string", "minLength": 1, "maxLength": 80, "description": "channel id (C…) or name (#general)"}

MESSAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["channel"],
    "anyOf": [{"required": ["text"]}, {"required": ["blocks"]}],
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
