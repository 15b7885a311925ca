"""Digits as callers say them and Whisper writes them: "oh", "zero", "five", "double five".

One table of spoken digits and one rule for what a token stands for, so every layer reads a
spoken number the same way. It imports nothing from ``voice_agent``. Used by
``voice_agent.redaction`` (phone and card numbers), ``voice_agent.tickets.numbers`` (ticket
numbers) and ``voice_agent.flows.caller_words`` (callback numbers, names that are not digits).
Each of them keeps its own rules for which runs of tokens form a number.
"""

from __future__ import annotations

DIGIT_WORDS = {  # spoken digits as Whisper writes them
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
REPEAT_WORDS = {"double": 2, "triple": 3}


def token_digits(token: str, repeat: int = 1) -> str:
    """The digits one token stands for: written digits as they are ("1234"), a spoken digit as
    its digit ("Five" -> "5"); a single digit ``repeat`` times ("double five" -> "55").

    Raises KeyError when ``token`` is neither digits nor a spoken digit.
    """
    digits = token if token.isdigit() else DIGIT_WORDS[token.lower()]
    return digits * repeat if len(digits) == 1 else digits
