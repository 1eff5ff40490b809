"""What an inbound text asks for: stop, start, help, or nothing in particular.

The carrier keywords (CTIA, and Twilio's Advanced Opt-Out defaults) match the whole
message, any case, surrounding spaces and punctuation ignored. People also write
opt-outs in their own words; a short list of unambiguous phrases catches the common
ones ("please stop texting me", "remove me from this list"). A phrase list can be
wrong both ways, so it stays small: a missed opt-out still gets the STOP instruction
every marketing text carries, and "stop" alone inside a longer sentence ("can't stop
smiling") does not count.
"""

from __future__ import annotations

import re

STOP, START, HELP, OTHER = "stop", "start", "help", "other"

STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt out", "revoke"})
START_WORDS = frozenset({"start", "yes", "unstop", "optin", "opt in"})
HELP_WORDS = frozenset({"help", "info"})
OPT_OUT_PHRASES = (
    "stop texting", "stop messaging", "stop sending", "stop contacting", "stop these texts", "stop the texts",
    "remove me", "take me off", "unsubscribe me", "do not text", "dont text", "don't text", "no more texts",
    "no more messages", "leave me alone",
)


def normalise(body: str) -> str:
    """Lower case, single spaces, no punctuation at either end."""
    text = re.sub(r"\s+", " ", (body or "").strip().casefold())
    return text.strip(" .,!?;:'\"()[]-")


def intent(body: str) -> str:
    text = normalise(body)
    if text in STOP_WORDS:
        return STOP
    if text in START_WORDS:
        return START
    if text in HELP_WORDS:
        return HELP
    if any(phrase in text for phrase in OPT_OUT_PHRASES):
        return STOP
    return OTHER
