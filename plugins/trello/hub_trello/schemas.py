"""Input schemas of the Trello actions: strict enough that a caller's mistake is a 400
naming the field before any request reaches Trello."""

TRELLO_ID = {"type": "string", "pattern": "^[0-9a-fA-F]{24}$", "maxLength": 24, "description": "a Trello id (24 hex characters)"}
TEXT = {"type": "string", "maxLength": 16384}
DUE = {"type": ["string", "null"], "format": "date-time", "maxLength": 64, "description": "RFC 3339 date-time, or null to clear"}
POS = {"oneOf": [{"enum": ["top", "bottom"]}, {"type": "number", "exclusiveMinimum": 0}]}

BOARDS = {"type": "object", "additionalProperties": False, "properties": {}}

BOARD = {"type": "object", "additionalProperties": False, "required": ["board_id"], "properties": {"board_id": TRELLO_ID}}

CREATE_CARD = {
    "type": "object",
    "additionalProperties": False,
    "required": ["idList"],
    "properties": {
        "idList": TRELLO_ID,
        "name": {**TEXT, "minLength": 1},
        "desc": TEXT,
        "due": DUE,
        "pos": POS,
        "idLabels": {"type": "array", "items": TRELLO_ID, "uniqueItems": True, "maxItems": 50},
    },
}

UPDATE_CARD = {
    "type": "object",
    "additionalProperties": False,
    "required": ["card_id"],
    "minProperties": 2,  # the card id and at least one change
    "properties": {
        "card_id": TRELLO_ID,
        "name": {**TEXT, "minLength": 1},
        "desc": TEXT,
        "due": DUE,
        "dueComplete": {"type": "boolean"},
        "idList": TRELLO_ID,
        "closed": {"type": "boolean"},
    },
}

COMMENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["card_id", "text"],
    "properties": {"card_id": TRELLO_ID, "text": {**TEXT, "minLength": 1}},
}
