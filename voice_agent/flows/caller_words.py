"""What a caller's words mean for the conversation, decided without the language model.

Transcripts arrive as Whisper writes them ("Yeah, no, it still doesn't work.", "This is Dana
Whitfield, you can call me back on five five five, one two three, four five six seven."). These
small, tested pattern checks decide the common moves of a helpdesk call in microseconds, so the
1.5B model on a CPU is only asked for what only it can do: free-form replies.
"""

from __future__ import annotations

import re

from voice_agent.spoken_digits import DIGIT_WORDS, REPEAT_WORDS, token_digits

_WORDS = re.compile(r"[a-z0-9']+")

_DIGIT_WORDS = DIGIT_WORDS
_MULTIPLIERS = REPEAT_WORDS

_YES = re.compile(
    r"\b(yes|yeah|yep|yup|sure|please do|please|go ahead|ok(ay)?|that would be|sounds good|"
    r"it works|it worked|that worked|that did it|fixed|solved|working now|all good|correct|right)\b"
)
_NO = re.compile(
    r"\b(no|nope|nah|not really|didn't|did not|doesn't|does not|don't|still|same|nothing|"
    r"isn't|is not|won't|can't|cannot|never mind|no thanks)\b"
)
_WORKED = re.compile(
    r"\b(it works|it worked|that worked|that did it|fixed|solved|working now|works now|"
    r"all good|it's working|it is working|back to normal|that helped|that fixed)\b"
)
_NOT_WORKED = re.compile(
    r"\b(didn't|did not|doesn't|does not|not working|still|same|nothing|no luck|won't|"
    r"isn't|is not|no)\b"
)
_HUMAN = re.compile(
    r"\b(human|real person|a person|someone real|an agent|live agent|technician|operator|"
    r"representative|speak to someone|talk to someone|transfer me|put me through)\b"
)
_GOODBYE = re.compile(
    r"\b(bye|goodbye|that's all|that is all|nothing else|have a good (day|one))\b"
)
# only a goodbye as the answer to "anything else?" ("I'm good, thanks, and you?" is small talk)
_DONE = re.compile(r"\b(no,? thanks?|no thank you|i'm good|i am good|all set|that's it|nope)\b")
_TICKET_REQUEST = re.compile(
    r"\b(open|create|raise|log|file|make|submit|put in|start)(\s+[a-z']+){0,2}?\s+(ticket|"
    r"incident|case)\b|\b(ticket|incident) (please|for me)\b"
    # "a ticket" as small Whisper models write it on phone audio, only as a whole request
    r"|\b(open|create|raise|log|make|submit)(\s+[a-z']+)?\s+(to get|tick it|take it)"
    r"(\s+for me)?(,?\s+please)?\s*([.?!]|$)"
)
_PLAIN_YES = re.compile(r"\b(yes|yeah|yep|yup|correct)\b")
_TICKET_STATUS = re.compile(
    r"\b(status|update|progress|news|follow(ing)? up|check(ing)? on)\b.*\b(ticket|incident|case|"
    r"request)\b|\b(ticket|incident|case|request)\b.*\b(status|update|progress)\b"
)
# "my name is" introduces a name in any case; "this is" / "I'm" / "it's" only a capitalised one
# (Whisper capitalises names), so "I'm locked out" or "it's Outlook again" are not names
_NAME_ANY_CASE = re.compile(
    r"\b(?:my name is|my name's|name is)\s+([a-z][a-z'\-]+(?:\s+[a-z][a-z'\-]+)?)", re.IGNORECASE
)
_NAME_CAPITALISED = re.compile(
    r"\b(?:[Tt]his is|I'm|I am|[Ii]t's)\s+([A-Z][a-z'\-]+(?:\s+[A-Z][a-z'\-]+)?)"
)
# words that follow "I'm"/"this is" but are not names ("I'm calling", "this is urgent")
_NOT_NAMES = set(
    """calling trying having unable not just still a an the from with in on at about here
    locked stuck getting going working looking sorry afraid sure good fine okay ok urgent
    really very so it that this my your our their new back done able ringing having and but
    or double triple calling outlook windows teams excel word""".split()
)


_SMALL_TALK = re.compile(
    r"^(hi|hello|hey|good (morning|afternoon|evening)|can you hear me|are you there|hello\?|"
    r"who is this|is this the (it )?help ?desk|are you a (robot|bot|person|human)|thanks?|"
    r"thank you|okay|ok|yes|no|sorry)\b"
)
_FILLER = set(
    """hi hello hey there yes yeah ok okay so um uh well can you hear me is this the it i a an
    of to and my me are who good morning afternoon evening please thanks thank sorry what""".split()
)


def is_small_talk(text: str) -> bool:
    """ "Hello, can you hear me?": nothing to triage yet (fewer than two content words)."""
    content = [w for w in words(text) if w not in _FILLER]
    return len(content) < 2 or (bool(_SMALL_TALK.match(text.lower())) and len(content) < 3)


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _opening(text: str, n: int = 4) -> str:
    """The first few words: where an answer to a yes/no question is ("Sure, go ahead")."""
    return " ".join(words(text)[:n])


_WEAK_YES = re.compile(r"^(ok|okay|alright|all right|right|correct|fine)\b")


def said_yes(text: str) -> bool:
    """An agreement ("yes please", "sure, go ahead"), not outweighed by a refusal. A bare
    "okay" counts only as a short answer: "Okay so the thing is..." goes on to say more."""
    t = _opening(text)
    if _WEAK_YES.match(t) and len(words(text)) > 4:
        return False
    return bool(_YES.search(t)) and not (_NO.search(t) and not _WORKED.search(t))


def said_no(text: str) -> bool:
    t = _opening(text)
    return bool(_NO.search(t)) and not _YES.search(t.replace("no thanks", ""))


def step_worked(text: str) -> bool | None:
    """After "did that work?": True, False, or None when the answer says neither."""
    t = text.lower()
    if _WORKED.search(t) and not re.search(r"\b(didn't|did not|doesn't|not|still)\b", t):
        return True
    if _NOT_WORKED.search(t):
        return False
    if _PLAIN_YES.search(t):
        return True
    return None


def wants_human(text: str) -> bool:
    return bool(_HUMAN.search(text.lower()))


def says_goodbye(text: str, *, asked_anything_else: bool = False) -> bool:
    t = text.lower()
    return bool(_GOODBYE.search(t)) or (asked_anything_else and bool(_DONE.search(t)))


def wants_ticket(text: str) -> bool:
    return bool(_TICKET_REQUEST.search(text.lower()))


def asks_ticket_status(text: str) -> bool:
    return bool(_TICKET_STATUS.search(text.lower()))


# "Hi, Karen Walsh from the warehouse." / "Hey, Angela Ruiz here." / "Hello, Simon Clarke
# speaking." / "Good afternoon, Lucy Turner.": a capitalised first and last name opening the call
_GREETING = (
    r"(?i:(?:yes|yeah|oh|well|um|uh|so|hi|hiya|hello|hey|morning|afternoon|evening|good "
    r"(?:morning|afternoon|evening|day)|hi there|hello there|hey there)[,.!]?\s+)"
)
_NAME_OPENING = re.compile(  # case-sensitive: a name is capitalised, "That's all." is not one
    r"^\s*" + _GREETING + r"+([A-Z][a-z'\-]+\s+[A-Z][a-z'\-]+)"
    r"(?=\s*(?:[.,!?]|$|\s+(?i:here|speaking|calling|from|in|on)\b))"
)
_NAME_HERE = re.compile(r"\b([A-Z][a-z'\-]+(?:\s+[A-Z][a-z'\-]+)?)\s+(?:here|speaking)\b")
# capitalised words that are not names however a sentence puts them
_NOT_NAME_WORDS = _NOT_NAMES | set(
    """hi hello hey good morning afternoon evening yes yeah my the our vpn wi-fi wifi
    microsoft teams outlook onedrive bitlocker windows mac apple zoom adobe sharepoint excel
    office printer laptop computer email internet network password account monday tuesday
    wednesday thursday friday saturday sunday sorry please thanks thank""".split()
)


def _as_name(found: str) -> str | None:
    kept = []
    for part in found.split():
        bare = part.strip("'-")
        if bare.lower() in _NOT_NAME_WORDS or bare.lower() in _DIGIT_WORDS or not bare:
            break
        kept.append(bare[:1].upper() + bare[1:])
    return " ".join(kept) or None


def caller_name(text: str) -> str | None:
    """ "This is Dana Whitfield" -> "Dana Whitfield"; None when no name is given."""
    matches = [*_NAME_ANY_CASE.finditer(text), *_NAME_CAPITALISED.finditer(text)]
    for match in sorted(matches, key=lambda m: m.start()):
        name = _as_name(match.group(1))
        if name:
            return name
    for pattern in (_NAME_OPENING, _NAME_HERE):
        found = pattern.search(text)
        if found and found.group(1)[:1].isupper():
            name = _as_name(found.group(1))
            if name and len(name.split()) == len(found.group(1).split()):
                return name
    return None


def bare_name(text: str) -> str | None:
    """An answer to "may I have your name?" that is just the name ("Dana Whitfield.",
    "It's Dana Whitfield", "Sure, Dana"). Whisper capitalises the names it recognises: words
    it wrote in lower case ("It's time to home." for "It's Gary Holmes") are not taken as one."""
    kept = [
        w
        for w in re.findall(r"[A-Za-z][A-Za-z'\-]*", text)
        if w.lower() not in {"it's", "its", "my", "name", "is", "i'm", "this", "it", "sure",
                             "yes", "yeah", "okay", "ok", "hi", "hello", "of", "course", "am",
                             "i", "that's", "thats", "uh", "um", "well", "so", "the", "and"}
    ]  # fmt: skip
    kept = kept[:3]
    if not kept or not all(w[:1].isupper() for w in kept):
        return None
    return _as_name(" ".join(kept))


_LETTER_NAMES = {
    "ay": "a", "bee": "b", "be": "b", "see": "c", "sea": "c", "cee": "c", "dee": "d",
    "ee": "e", "eff": "f", "ef": "f", "gee": "g", "aitch": "h", "eye": "i", "jay": "j",
    "kay": "k", "el": "l", "ell": "l", "em": "m", "en": "n", "oh": "o", "pee": "p",
    "cue": "q", "queue": "q", "are": "r", "ar": "r", "ess": "s", "tee": "t", "tea": "t",
    "you": "u", "vee": "v", "ex": "x", "why": "y", "zed": "z", "zee": "z",
}  # fmt: skip


def spelled_words(text: str) -> list[str]:
    """The words a caller spelled ("R U I Z", "R-U-I-Z", "R. U. I. Z.", "are you eye zed"),
    each as lower-case letters: runs of at least three letters, at least half of them written
    as single letters (so "see you in the last" is not a spelling)."""
    tokens = re.findall(r"[A-Za-z]+", text.replace("double u", "w").replace("double you", "w"))
    runs: list[str] = []
    run, singles = "", 0
    for token in [*tokens, ""]:
        bare = token.lower()
        letter = bare if len(bare) == 1 else _LETTER_NAMES.get(bare) if token.islower() else None
        if letter:
            run += letter
            singles += len(bare) == 1
            continue
        if len(run) >= 3 and singles * 2 >= len(run):
            runs.append(run)
        run, singles = "", 0
    return runs


def spelled_name(text: str, heard: str | None = None) -> str | None:
    """The caller's name from its spelling. Spelled parts replace the heard parts they match
    best by position ("Angela Reese" + "R U I Z" -> "Angela Ruiz"); a spelling of every part
    replaces the whole name."""
    runs = [r.capitalize() for r in spelled_words(text)]
    if not runs:
        return None
    parts = (heard or "").split()
    if not parts or len(runs) >= len(parts):
        return " ".join(runs[:3])
    return " ".join(parts[: len(parts) - len(runs)] + runs)


def spoken_digits(text: str) -> str:
    """Every digit in order, whether written ("555-1234") or spoken ("five five five",
    "double four"), other words dropped."""
    out: list[str] = []
    repeat = 1
    for token in re.findall(r"[a-z]+|\d+", text.lower()):
        if token.isdigit():
            out.append(token_digits(token, repeat))
            repeat = 1
        elif token in _MULTIPLIERS:
            repeat = _MULTIPLIERS[token]
        elif token in _DIGIT_WORDS and (token not in ("o", "oh") or out):
            out.append(token_digits(token, repeat))
            repeat = 1
        else:
            repeat = 1
    return "".join(out)


def callback_number(text: str) -> str | None:
    """A phone number the caller gives (7 to 15 digits), as digits with an optional +."""
    t = text.lower()
    if not re.search(r"\b(call|reach|number|phone|mobile|cell|extension|ext|at|on)\b", t):
        return None
    digits = spoken_digits(t.split("ticket")[0] if "ticket" in t else t)
    if 7 <= len(digits) <= 15:
        return ("+" if "+" in text else "") + digits
    return None
