"""Constants of the Slack incoming-webhook destination (limits from Slack's API docs)."""

from __future__ import annotations

PLUGIN_NAME = "slack"
SLACK_HOST = "hooks.slack.com"
WEBHOOK_PATH_PREFIX = "/services/"
#: Block Kit: a message has at most 50 blocks
MAX_BLOCKS = 50
#: Block Kit: a section block's text is at most 3,000 characters
MAX_SECTION_TEXT = 3000

