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

# --- what the actions answer (the `data` of the hub's answer) ----------------------------

ID = {"type": "string", "pattern": "^[0-9a-f]{24}$"}
MOMENT = {"type": ["string", "null"], "description": "ISO 8601 date-time, or null"}

BOARD_SUMMARY = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {
        "id": ID,
        "name": {"type": "string"},
        "desc": {"type": "string"},
        "closed": {"type": "boolean"},
        "url": {"type": "string"},
        "shortUrl": {"type": "string"},
        "idOrganization": {"type": ["string", "null"]},
        "dateLastActivity": MOMENT,
        "prefs": {"type": "object"},
    },
}

LIST = {
    "type": "object",
    "required": ["id", "name", "idBoard"],
    "properties": {"id": ID, "name": {"type": "string"}, "closed": {"type": "boolean"}, "pos": {"type": "number"}, "idBoard": ID},
}

CARD = {
    "type": "object",
    "required": ["id", "name", "idList", "idBoard"],
    "properties": {
        "id": ID,
        "name": {"type": "string"},
        "desc": {"type": "string"},
        "idList": ID,
        "idBoard": ID,
        "due": MOMENT,
        "dueComplete": {"type": "boolean"},
        "pos": {"type": "number"},
        "closed": {"type": "boolean"},
        "idLabels": {"type": "array", "items": ID},
        "idMembers": {"type": "array", "items": ID},
        "url": {"type": "string"},
        "shortUrl": {"type": "string"},
        "dateLastActivity": MOMENT,
    },
}

BOARD_LIST = {"type": "array", "items": BOARD_SUMMARY}
BOARD_DETAIL = {
    **BOARD_SUMMARY,
    "required": [*BOARD_SUMMARY["required"], "lists", "cards"],
    "properties": {**BOARD_SUMMARY["properties"], "lists": {"type": "array", "items": LIST}, "cards": {"type": "array", "items": CARD}},
}
LISTS = {"type": "array", "items": LIST}
CARDS = {"type": "array", "items": CARD}

COMMENT_ACTION = {
    "type": "object",
    "required": ["id", "type", "data"],
    "properties": {
        "id": ID,
        "type": {"const": "commentCard"},
        "date": {"type": "string"},
        "idMemberCreator": ID,
        "data": {
            "type": "object",
            "required": ["text"],
            "properties": {
                "text": {"type": "string"},
                "card": {"type": "object", "properties": {"id": ID, "name": {"type": "string"}}},
                "board": {"type": "object", "properties": {"id": ID}},
                "list": {"type": "object", "properties": {"id": ID}},
            },
        },
    },
}

# --- example inputs: ids of the sandbox's fake Trello (its seeded "Product Roadmap" board,
# its "To Do" list and the card "Write the onboarding guide") --------------------------

ROADMAP, TO_DO, GUIDE = "5f5e1000c94e25866f000002", "5f5e100039aa3efbe500000e", "5f5e1000edb84aa24d000017"

BOARD_EXAMPLES = ({"board_id": ROADMAP},)
CREATE_CARD_EXAMPLES = (
    {"idList": TO_DO, "name": "Write the release notes"},
    {"idList": TO_DO, "name": "Plan the offsite", "desc": "Venue, dates and agenda", "pos": "top", "due": "2026-06-01T09:00:00.000Z"},
)
UPDATE_CARD_EXAMPLES = ({"card_id": GUIDE, "name": "Write the onboarding guide (second draft)"}, {"card_id": GUIDE, "dueComplete": True})
COMMENT_EXAMPLES = ({"card_id": GUIDE, "text": "The draft is ready for review."},)
