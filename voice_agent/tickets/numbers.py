"""Ticket numbers (``INC`` + 7 digits) in what a caller says, as Whisper writes it.

Callers read numbers out in many ways and Whisper writes each differently: ``INC0001234``,
``I N C 1 2 3 4``, ``I.N.C. 1234``, ``ink 1234``, ``ticket one two three four``,
``incident number 0001234``, ``ticket number is oh oh oh one, two three four``. A run of digits
only counts as a ticket number after a ticket word (ticket, incident, case, INC) with at most a
few filler words in between, so a phone number ("call me at 555 1234") is not taken for one,
unless the agent has just asked for a ticket number (``expecting=True``), when bare digits count.
"""

from __future__ import annotations

import re

from voice_agent.spoken_digits import DIGIT_WORDS, REPEAT_WORDS, token_digits

PREFIX = "INC"
DIGITS = 7

# "I N C", "I.N.C.", "i-n-c" -> "inc"; "INC0001234", "inc#1234" -> "inc 0001234"
_SPELLED_INC = re.compile(r"\bi[\s.,-]+n[\s.,-]+c\b\.?", re.IGNORECASE)
_GLUED = re.compile(r"\b(inc|ink)[\s#:.-]*(?=\d)", re.IGNORECASE)
_TOKENS = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+")

# The prefix itself, as written or spelled: any digits after it are a ticket number; misheard
# forms need three digits or more ("out of ink 2 times" is not ticket 2).
_PREFIX_WORDS = {"inc", "ink", "inks", "incs", "ince"}
_EXACT_PREFIX = "inc"
# Words that say a ticket number follows; a spoken-digit answer needs three digits or more
# after them ("a ticket one more time" is not ticket 1).
_TICKET_WORDS = {"ticket", "incident", "case"}
_FILLERS = {
    "number", "no", "num", "is", "it's", "its", "was", "the", "id", "reference",
    "ref", "uh", "um", "er", "ah", "so", "yeah", "yes", "it", "that", "that's", "i", "think",
    "believe", "says", "said", "of", "colon", "hash", "hashtag", "pound", "be", "should",
}  # fmt: skip
_MAX_FILLERS = 4
_MIN_SPOKEN_DIGITS = 3


def normalize_ticket_number(text: str) -> str | None:
    """A number typed or already extracted: ``INC0001234``, ``inc 1234``, ``1234`` ->
    ``INC0001234``; None when ``text`` is not one ticket number."""
    compact = re.sub(r"[\s#:.,-]", "", text or "").upper()
    if compact.startswith(PREFIX):
        compact = compact[len(PREFIX) :]
    if not compact.isdigit():
        return None
    return _fit(compact)


def parse_ticket_number(text: str, *, expecting: bool = False) -> str | None:
    """The first ticket number in a caller's words, as ``INC`` + 7 digits; None if there is none.

    ``expecting``: the agent has just asked for a ticket number, so digits alone count.
    """
    if not text:
        return None
    t = _SPELLED_INC.sub(" inc ", text.lower())
    t = _GLUED.sub(r"\1 ", t)
    tokens = _TOKENS.findall(t)
    for i, token in enumerate(tokens):
        if token in _PREFIX_WORDS or token in _TICKET_WORDS:
            number = _digits_after(
                tokens,
                i + 1,
                strict=token != _EXACT_PREFIX,
                misheard=token in _PREFIX_WORDS and token != _EXACT_PREFIX,
            )
            if number:
                return number
    if expecting:
        for i, token in enumerate(tokens):
            if token.isdigit() or token in DIGIT_WORDS or token in REPEAT_WORDS:
                number = _digits_after(tokens, i, strict=True, max_fillers=0)
                if number:
                    return number
    return None


def _digits_after(
    tokens: list[str],
    start: int,
    *,
    strict: bool,
    misheard: bool = False,
    max_fillers: int = _MAX_FILLERS,
) -> str | None:
    """The digits that follow ``tokens[start:]`` after at most ``max_fillers`` filler words.

    ``strict``: spoken digits need three or more; ``misheard``: written ones too.
    """
    i, skipped = start, 0
    while i < len(tokens) and not _is_digit_token(tokens, i):
        word = tokens[i]
        if word in _PREFIX_WORDS or word in _TICKET_WORDS:
            i += 1  # "ticket number INC 1234", "incident ticket 1234"
            continue
        if word not in _FILLERS or skipped >= max_fillers:
            return None
        skipped += 1
        i += 1
    digits: list[str] = []
    written = False
    repeat = 1
    while i < len(tokens):
        word = tokens[i]
        if word.isdigit():
            digits.append(token_digits(word, repeat))
            written = True
        elif word in ("o", "oh") and i + 1 < len(tokens) and not _is_digit_token(tokens, i + 1):
            break  # "1234, oh wait": a trailing "oh" is a digit only at the very end
        elif word in DIGIT_WORDS:
            digits.append(token_digits(word, repeat))
        elif word in REPEAT_WORDS and i + 1 < len(tokens) and _is_digit_token(tokens, i + 1):
            repeat = REPEAT_WORDS[word]
            i += 1
            continue
        else:
            break
        repeat = 1
        i += 1
    number = "".join(digits)
    if not number:
        return None
    if strict and len(number) < _MIN_SPOKEN_DIGITS and not (written and not misheard):
        return None
    if strict and not written and number.strip("0") == "":
        return None  # "ticket, oh, oh" is hesitation, not a number
    return _fit(number)


def _is_digit_token(tokens: list[str], i: int) -> bool:
    word = tokens[i]
    if word.isdigit() or word in REPEAT_WORDS:
        return True
    if word not in DIGIT_WORDS:
        return False
    # "o" and "oh" are digits only next to other digits ("oh oh one"), not "oh, I forgot"
    if word in ("o", "oh"):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        return nxt.isdigit() or nxt in DIGIT_WORDS or nxt in REPEAT_WORDS
    return True


def _fit(digits: str) -> str | None:
    """INC + exactly 7 digits: pad short numbers, drop extra leading zeros, refuse longer ones."""
    if len(digits) > DIGITS:
        digits = digits.lstrip("0").rjust(DIGITS, "0")
    if len(digits) > DIGITS or int(digits) == 0:
        return None
    return PREFIX + digits.rjust(DIGITS, "0")
