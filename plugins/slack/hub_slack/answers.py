"""Example answers of the Slack actions (the ``data``), recorded from the fake Slack,
with the account's names and ids replaced and lists cut to one item. The OpenAPI document
shows them; each must pass its action's output_schema."""

from typing import Any

ANSWERS: dict[str, Any] = {
    "post_message": {
        "channel": "C0000000001",
        "ts": "1796382550.425479",
        "message": {
            "type": "message",
            "text": "Deploy finished: version 2.4.1 is live.",
            "user": "U0EXAMPLE01",
            "ts": "1796382550.425479",
            "team": "T0EXAMPLE01",
            "bot_id": "B0EXAMPLE01",
        },
    },
    "list_channels": {
        "channels": [
            {
                "id": "C0000000001",
                "name": "general",
                "is_channel": True,
                "is_group": False,
                "is_im": False,
                "is_mpim": False,
                "is_private": False,
                "is_archived": False,
                "is_general": True,
                "is_member": True,
                "created": 1449339289,
                "creator": "U0000000001",
                "num_members": 4,
                "topic": {"value": "Talk about general", "creator": "U0000000001", "last_set": 1449339289},
                "purpose": {"value": "The general channel", "creator": "U0000000001", "last_set": 1449339289},
            },
        ],
        "nextCursor": None,
    },
    "get_user": {
        "id": "U0000000001",
        "team_id": "T0EXAMPLE01",
        "name": "alan",
        "real_name": "Alan Turing",
        "deleted": False,
        "is_bot": False,
        "tz": "Europe/London",
        "profile": {
            "email": "alan@example.com",
            "display_name": "alan",
            "real_name": "Alan Turing",
            "image_72": "https://avatars.slack-edge.com/fake/U0000000001_72.png",
        },
    },
}
