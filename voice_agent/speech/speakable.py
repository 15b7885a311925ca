"""Text the agent must never read aloud: URLs, file paths and code, rewritten before Piper.

Registered as pipecat TTS text transforms, after markdown stripping; the conversation context
keeps the text as the model wrote it (supervisors see the link), only the voice changes.
"""

from __future__ import annotations

import re

from pipecat.utils.text.base_text_aggregator import TextType

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()]+", re.IGNORECASE)
_WIN_PATH = re.compile(r"\b[A-Za-z]:\\[^\s]*")
_UNIX_PATH = re.compile(r"(?<![\w.])/(?:[\w.-]+/){2,}[\w.-]*")
_CODE = re.compile(r"`[^`]*`")
_SPACES = re.compile(r"\s{2,}")


def speakable(text: str) -> str:
    text = _URL.sub("the link I'll send you", text)
    text = _WIN_PATH.sub("the file location", text)
    text = _UNIX_PATH.sub("the file location", text)
    text = _CODE.sub("", text)
    return _SPACES.sub(" ", text).strip()


async def speakable_transform(text: str, text_type: str | TextType) -> str:
    return speakable(text)
