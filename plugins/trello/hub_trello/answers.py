"""Example answers of the Trello actions (the ``data``), recorded from the fake Trello,
with the account's names and ids replaced and lists cut to one item. The OpenAPI document
shows them; each must pass its action's output_schema."""

from typing import Any

LIST: dict[str, Any] = {
    "id": "5f5e100039aa3efbe500000e",
    "name": "To Do",
    "closed": False,
    "pos": 16384,
    "idBoard": "5f5e1000c94e25866f000002",
    "subscribed": False,
}
CARD: dict[str, Any] = {
    "id": "5f5e1000edb84aa24d000017",
    "idShort": 1,
    "name": "Write the onboarding guide",
    "desc": "For new users",
    "closed": False,
    "idList": "5f5e100039aa3efbe500000e",
    "idBoard": "5f5e1000c94e25866f000002",
    "pos": 16384,
    "due": "2024-02-01T17:00:00.000Z",
    "start": None,
    "dueComplete": False,
    "idLabels": ["5f5e1000a9322c15cf000003"],
    "idMembers": [],
    "url": "https://trello.com/c/10WEMy6M/1-write-the-onboarding-guide",
    "shortUrl": "https://trello.com/c/10WEMy6M",
    "shortLink": "10WEMy6M",
    "dateLastActivity": "2024-01-15T10:00:00.000Z",
    "labels": [
        {
            "id": "5f5e1000a9322c15cf000003",
            "idBoard": "5f5e1000c94e25866f000002",
            "name": "Ready",
            "color": "green",
        },
    ],
}

ANSWERS: dict[str, Any] = {
    "list_boards": [
        {
            "id": "5f5e1000c94e25866f000002",
            "name": "Product Roadmap",
            "desc": "What we build next",
            "closed": False,
            "idOrganization": None,
            "url": "https://trello.com/b/6KeZBhO5/product-roadmap",
            "shortUrl": "https://trello.com/b/6KeZBhO5",
            "prefs": {
                "permissionLevel": "private",
                "background": "blue",
                "backgroundColor": "#0079BF",
                "backgroundImage": None,
            },
            "dateLastActivity": "2024-01-15T10:00:00.000Z",
        },
    ],
    "get_board": {
        "id": "5f5e1000c94e25866f000002",
        "name": "Product Roadmap",
        "desc": "What we build next",
        "closed": False,
        "idOrganization": None,
        "idMemberCreator": "5f5e1000a58fc5b9120000aa",
        "pinned": False,
        "starred": False,
        "url": "https://trello.com/b/6KeZBhO5/product-roadmap",
        "shortUrl": "https://trello.com/b/6KeZBhO5",
        "shortLink": "6KeZBhO5",
        "prefs": {
            "permissionLevel": "private",
            "background": "blue",
            "backgroundColor": "#0079BF",
            "backgroundImage": None,
        },
        "labelNames": {"green": "Ready", "yellow": "", "orange": "", "red": "Urgent", "purple": "", "blue": ""},
        "dateLastActivity": "2024-01-15T10:00:00.000Z",
        "lists": [
            LIST,
        ],
        "cards": [
            CARD,
        ],
    },
    "list_lists": [
        LIST,
    ],
    "list_cards": [
        CARD,
    ],
    "create_card": {
        "id": "6b129f5601afe10fb9000021",
        "idShort": 7,
        "name": "Write the release notes",
        "desc": "",
        "closed": False,
        "idList": "5f5e100039aa3efbe500000e",
        "idBoard": "5f5e1000c94e25866f000002",
        "pos": 49152,
        "due": None,
        "start": None,
        "dueComplete": False,
        "idLabels": [],
        "idMembers": [],
        "url": "https://trello.com/c/PopAP0WL/7-write-the-release-notes",
        "shortUrl": "https://trello.com/c/PopAP0WL",
        "shortLink": "PopAP0WL",
        "dateLastActivity": "2026-12-04T11:09:10.450Z",
        "labels": [],
    },
    "update_card": {**CARD, "name": "Write the onboarding guide (second draft)", "dateLastActivity": "2026-12-04T11:09:10.454Z"},
    "add_comment": {
        "id": "6b129f565aa5a546f1000022",
        "idMemberCreator": "5f5e1000a58fc5b9120000aa",
        "type": "commentCard",
        "date": "2026-12-04T11:09:10.456Z",
        "data": {
            "text": "The draft is ready for review.",
            "card": {
                "id": "5f5e1000edb84aa24d000017",
                "name": "Write the onboarding guide (second draft)",
                "idShort": 1,
                "shortLink": "10WEMy6M",
            },
            "board": {"id": "5f5e1000c94e25866f000002", "name": "Product Roadmap", "shortLink": "6KeZBhO5"},
            "list": {"id": "5f5e100039aa3efbe500000e", "name": "To Do"},
        },
        "memberCreator": {
            "id": "5f5e1000a58fc5b9120000aa",
            "username": "alan",
            "fullName": "Alan Turing",
            "initials": "AL",
            "avatarUrl": "https://trello-members.s3.amazonaws.com/5f5e1000a58fc5b9120000aa/avatar",
        },
    },
}
