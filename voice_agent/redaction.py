"""PII redaction for what callers say before it is stored.

Call transcripts end up in a database that supervisors browse and in tickets that other systems
copy, so e-mail addresses, phone numbers, payment card numbers and spoken passwords are replaced
with tags (``[email]``, ``[phone]``, ``[card]``, ``[password]``) at the storage boundary.

The input is speech-to-text output, so each kind is matched both as written text and as Whisper
writes speech: ``john dot smith at contoso dot com``, ``five five five, one two three four``,
``my password is hunter two``. What must stay readable for a helpdesk stays intact: ticket numbers
(``INC0001234``), error codes (``0x80070005``, ``error 404``), extensions (``ext 12``), years,
IP addresses, dates and ordinary remarks about passwords (``my password is expired``).

Digit runs are classified by length: 13-19 digits passing the Luhn check are a card; 7-15 digits
are a phone number; shorter runs are left alone (error codes, extensions, PINs are not phone
numbers). A caller's name is not redacted: a ticket needs it.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from voice_agent.spoken_digits import DIGIT_WORDS, REPEAT_WORDS, token_digits

KINDS: tuple[str, ...] = ("email", "phone", "card", "password")

PHONE_DIGITS = (7, 15)  # E.164 allows at most 15 digits; 7 is a local number without area code
CARD_DIGITS = (13, 19)  # ISO/IEC 7812 primary account numbers


# --- e-mail ---------------------------------------------------------------------------------
#
# Two patterns, written first. A written address ("dana.whitfield@example.com") is unambiguous
# and must go whole; were the spoken pattern tried first, "me at dana.whitfield" would look like
# an address of its own and leave "@example.com" in the stored text. The spoken pattern then
# needs a domain that ends in a known top-level domain ("example dot com", "contoso.co.uk") and
# is the last "at <domain>" in the run, so "me at dana dot whitfield at example dot com" is read
# as the address dana.whitfield@example.com said after "me at".

_WRITTEN_DOT = r"\."  # no spaces: in "john@contoso.com. Then" the sentence ends after "com"
_DOT = rf"(?:{_WRITTEN_DOT}|\s+dot\s+)"
_LOCAL_SEP = r"(?:[._%+-]|\s+(?:dot|underscore|dash|hyphen|plus)\s+)"
_LOCAL_CHAIN = rf"[a-z0-9]+(?:{_LOCAL_SEP}[a-z0-9]+)*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_WRITTEN_EMAIL = re.compile(
    rf"(?<![\w@.'’]){_LOCAL_CHAIN}"  # local part, its separators written or spoken
    rf"\s*@\s*"
    rf"{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}[a-z]{{2,24}}\b",  # domain with at least one dot
    re.IGNORECASE,
)

# Top-level domains a spoken address may end in. A list rather than any word: after a spoken
# "at" the domain is the only evidence of an address, and "crashed at module dot py" or "I'm at
# version dot two" are not addresses. File extensions that are also country codes (py, sh, md,
# rs, pl as in Perl, ps, js) are left out on purpose.
_TLDS = frozenset(
    """
    com net org edu gov mil int info biz name pro mobi io ai app dev cloud email online site tech
    xyz me tv co uk us ca au nz ie de fr es it nl be ch at se no dk fi pt br mx ar cl jp cn kr
    sg hk tw in za ru eu cz hu ro gr tr il ae sa
    """.split()
)
_TLD = rf"(?:{'|'.join(sorted(_TLDS, key=len, reverse=True))})\b"
_SPOKEN_LABEL = rf"{_LABEL}(?:\s+(?:dash|hyphen)\s+{_LABEL})*"  # "north dash wind"
_SPOKEN_DOMAIN = rf"{_SPOKEN_LABEL}(?:{_DOT}{_SPOKEN_LABEL})*{_DOT}{_TLD}"
_SPOKEN_AT = r"\s+at\s+"
# Whisper writes "johnsmith@" as "john smith at": one word before the local part belongs to it,
# unless it is a word that introduces an address ("email me at", "it's", "is", "to").
_NOT_A_LOCAL_WORD = frozenset(
    """
    a an the is are was were be been it its s this that these those me my mine our your his her
    their us we you i he she they them to at from for of on in by with and or but so then also
    just please yes yeah no ok okay sure well um uh er hi hello email mail address
    contact reach send sent write wrote cc copy use try call dot underscore dash hyphen plus
    """.split()
)
_LOCAL_WORD = rf"(?!(?:{'|'.join(sorted(_NOT_A_LOCAL_WORD))})\b)[a-z0-9]+"
_SPOKEN_EMAIL = re.compile(
    rf"(?<![\w@.'’])(?:{_LOCAL_WORD}\s+)?{_LOCAL_CHAIN}"  # local part
    rf"{_SPOKEN_AT}{_SPOKEN_DOMAIN}"
    # the whole domain, and the last "at <domain>": otherwise the match was inside a local part
    rf"(?!{_DOT}{_LABEL}|{_SPOKEN_AT}{_SPOKEN_DOMAIN}|\s*@)",
    re.IGNORECASE,
)

_NOT_A_DOMAIN = frozenset("the a an this that my your our their home work least all some".split())

# --- digits (phone, card) -------------------------------------------------------------------

# spoken digits without the lone "o", which is not read as a zero in free text
_DIGIT_WORD = rf"(?:{'|'.join(w for w in DIGIT_WORDS if w != 'o')})"
_DIGIT_TOKEN = rf"(?:(?:double|triple)\s+)?(?:\d+|{_DIGIT_WORD}\b)"
# Between the tokens of one number: spaces, dashes, a written dot without spaces (555.123.4567),
# parentheses, a comma followed by a space ("five five five, one two three four") and fillers.
# A comma before exactly three digits is a thousands separator: Whisper writes a spoken card
# number as "4,111 1111 ..." or "4,111,111,111,111,111" (such runs may only be a card: see below).
_NUM_SEP = r"(?:\s*-\s*|\.(?=\d)|,(?=\d{3}(?!\d))|\s*\(\s*|\s*\)\s*|,?\s+(?:(?:uh|um|er),?\s+)?)"
_THOUSANDS = re.compile(r"\d,\d{3}(?!\d)")
_DIGIT_RUN = re.compile(
    rf"(?<![\w.])(?:\+\s*|plus\s+)?\(?{_DIGIT_TOKEN}(?:{_NUM_SEP}{_DIGIT_TOKEN})*(?![\w])",
    re.IGNORECASE,
)
_TOKEN = re.compile(rf"(double|triple)\s+(\d+|{_DIGIT_WORD})|(\d+)|({_DIGIT_WORD})", re.I)
# A written dot joins digits of a phone number only in the 555.123.4567 layout; otherwise the
# dots belong to an IP address, a version or a build number (19045.3803).
_DOTTED_PHONE = re.compile(r"(?:\d{1,3}\.)?\d{3}\.\d{3}\.\d{4}")
# Long numbers that name a thing rather than a phone line ("error code 80070005", "ticket
# 1234567", "build 19045", a ticket number read back one character at a time: "I N C 0 0 0 0 0
# 1 2"): Whisper often drops the 0x of an error code.
_NOT_A_PHONE_BEFORE = re.compile(
    r"\b(?:error|code|build|version|kb|ticket|incident|case|order|invoice|model|serial|asset|tag"
    r"|port|ext|extension|room|inc|i\s+n\s+c)\s*(?:number|no\.?|num|id)?\s*(?:is\s*)?[:#]?\s*$",
    re.IGNORECASE,
)
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{4}")

# --- passwords ------------------------------------------------------------------------------

_PASSWORD_LEAD = re.compile(
    r"\b(?:password|pass\s*word|pass\s*code|passphrase|pass\s*phrase|pin(?:\s*(?:number|code))?)"
    r"(?:\s+(?:i|we)\s+(?:used|use|set|typed|tried|have|entered))?"
    r"\s*(?:,\s*)?(?:is|was|'s|’s|would\s+be|should\s+be|will\s+be|equals|:|=|it's|it’s)"
    r"(?:\s*,?\s*(?:uh|um|er)\s*,?)?\s*,?\s*",
    re.IGNORECASE,
)
# Words after "my password is" that describe the password rather than spell it.
_NOT_A_PASSWORD = frozenset(
    """
    a an the not no never wrong expired expiring incorrect locked invalid correct right too still
    being working case case-sensitive reset changed about going supposed required rejected
    forgotten lost empty blank fine ok okay weak strong long short old new different same saved
    stored set out in on off what that this it definitely probably also just really very always
    now already like something asking showing coming failing broken bad good all at for from to
    of up due there here my your our their his her its one only either neither getting gonna
    sent shared taken accepted updated synced synchronized valid longer
    complicated complex simple easy hard difficult saying telling asked prompted
    """.split()
)
_VALUE_STOP = frozenset(
    "and but so because which then or when if though although i it that who where while".split()
)
_MAX_PASSWORD_TOKENS = 8
# Words that open a remark ("my password is on a sticky note") or a value that Whisper heard
# as words ("on fire 42" for "sunflower42", "one two three four"): a value when digits follow.
_VALUE_IF_DIGITS_FOLLOW = frozenset("on in one up out off".split())


_EMAIL_CUE = re.compile(
    r"\b(e-?mail(?:\s+address)?(?:\s+is|:)?)\s+([^\s,;]*[.@][^\s,;]*[a-z0-9])([.,;]?(?:\s|$))",
    re.IGNORECASE,
)
_CARD_CUE = re.compile(
    r"\b((?:credit\s+|debit\s+)?card(?:\s+number)?(?:\s+is|:)?)\s+(\d(?:,?[\s-]?\d){11,22})"
    r"(\D|$)",
    re.IGNORECASE,
)


def redact(text: str, kinds: Collection[str] = KINDS) -> str:
    """``text`` with every piece of PII of the given ``kinds`` replaced by its tag."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    if not text or not kinds:
        return text
    # Passwords first: "my password is hunter2 at home dot com" must not leave half a password.
    if "password" in kinds:
        text = _redact_passwords(text)
    if "email" in kinds:
        text = _WRITTEN_EMAIL.sub("[email]", text)  # before the spoken form: see _WRITTEN_EMAIL
        text = _SPOKEN_EMAIL.sub(_email_tag, text)
        # Whisper garbles addresses ("Dana.Witfieldicantoso.com" for "... at contoso dot com"):
        # after "my email is", whatever looks like an address goes
        text = _EMAIL_CUE.sub(lambda m: f"{m.group(1)} [email]{m.group(3)}", text)
    if "card" in kinds:
        # after "card number is", any long digit run is the card, Luhn or not (Whisper may add
        # or drop a digit)
        text = _CARD_CUE.sub(lambda m: f"{m.group(1)} [card]{m.group(3)}", text)
    if "phone" in kinds or "card" in kinds:
        text = _DIGIT_RUN.sub(lambda m: _classify_digits(m, kinds), text)
    return text


def _email_tag(m: re.Match[str]) -> str:
    """``[email]``, unless a spoken "at" is ordinary English ("look at the dot com bubble")."""
    found = m.group(0)
    domain = re.split(_SPOKEN_AT, found, flags=re.IGNORECASE)[-1]
    first_label = re.split(_DOT, domain, flags=re.IGNORECASE)[0]
    if first_label.lower() in _NOT_A_DOMAIN:
        return found
    return "[email]"


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _tokens(run: str) -> list[tuple[str, int, int]]:
    """The digits each token of a run stands for, with the token's start and end in the run."""
    out = []
    for m in _TOKEN.finditer(run):
        repeat, repeated, digits, word = m.groups()
        if repeat:  # "double 55" is "5555" here: the whole written run is repeated
            out.append((token_digits(repeated) * REPEAT_WORDS[repeat.lower()], m.start(), m.end()))
        else:
            out.append((token_digits(digits or word), m.start(), m.end()))
    return out


def _classify_digits(m: re.Match[str], kinds: Collection[str]) -> str:
    """The run of digits with the card and phone numbers in it replaced by tags."""
    run = m.group(0)
    stripped = run.strip("+() ")
    if _DATE.fullmatch(stripped) or ("." in stripped and not _DOTTED_PHONE.fullmatch(stripped)):
        return run
    tokens = _tokens(run)
    out: list[str] = []
    consumed = 0  # characters of the run already copied or replaced
    i = 0
    while i < len(tokens):
        rest = tokens[i:]
        n_digits = sum(len(d) for d, _, _ in rest)
        card = _card_prefix(rest) if "card" in kinds else 0
        if card:
            tag, end = "[card]", i + card
        elif (
            "phone" in kinds
            and PHONE_DIGITS[0] <= n_digits <= PHONE_DIGITS[1]
            and not _THOUSANDS.search(run)  # "1,000,000 rows" is a quantity
            and not (i == 0 and _NOT_A_PHONE_BEFORE.search(m.string, 0, m.start()))
        ):
            tag, end = "[phone]", len(tokens)
        elif "card" in kinds and any(_card_prefix(tokens[j:]) for j in range(i + 1, len(tokens))):
            i += 1  # a card number further on ("expiry 12 25 4111 1111 ..."): skip to it
            continue
        else:
            break
        # a leading "+" / "plus" / "(" belongs to the number at the start of the run
        out.append(run[consumed : 0 if i == 0 else tokens[i][1]])
        out.append(tag)
        consumed = tokens[end - 1][2]
        i = end
    if not out:
        return run
    return "".join(out) + run[consumed:]


def _card_prefix(tokens: list[tuple[str, int, int]]) -> int:
    """How many leading tokens form a Luhn-valid card number (longest first); 0 if none."""
    for n in range(len(tokens), 0, -1):
        digits = "".join(d for d, _, _ in tokens[:n])
        if CARD_DIGITS[0] <= len(digits) <= CARD_DIGITS[1] and luhn_valid(digits):
            return n
    return 0


def _redact_passwords(text: str) -> str:
    out: list[str] = []
    pos = 0
    for lead in _PASSWORD_LEAD.finditer(text):
        if lead.start() < pos:
            continue
        said = lead.group(0)
        # "password: correct horse" is a value; "password is correct" is a remark
        spelled = said.rstrip(" ,").endswith((":", "="))
        end = _password_end(text, lead.end(), numeric_only=_is_pin(said), spelled=spelled)
        if end is None:
            continue
        out.append(text[pos : lead.end()])
        out.append("[password]")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _is_pin(lead: str) -> bool:
    return lead.lstrip().lower().startswith("pin")


_WORD = re.compile(r"\S+")


def _digits_follow(text: str, start: int) -> bool:
    """Whether the words from ``start`` to the end of the spoken value hold a digit."""
    for i, m in enumerate(_WORD.finditer(text, start)):
        raw = m.group(0)
        bare = raw.rstrip(".,;?").strip("\"'“”‘’").lower()
        if i == _MAX_PASSWORD_TOKENS or bare in _VALUE_STOP:
            return False
        if re.search(r"\d", bare) or re.fullmatch(_DIGIT_WORD, bare):
            return True
        if raw != raw.rstrip(".,;?"):
            return False
    return False


def _password_end(text: str, start: int, *, numeric_only: bool, spelled: bool) -> int | None:
    """End offset of the password spoken from ``start``; None if what follows is not one."""
    end = None
    for i, m in enumerate(_WORD.finditer(text, start)):
        if i == _MAX_PASSWORD_TOKENS:
            break
        raw = m.group(0)
        word = raw.rstrip(".,;?")
        bare = word.strip("\"'“”‘’").lower()
        if i == 0:
            if numeric_only:  # a PIN is digits: "the pin is bent" is hardware
                if not re.fullmatch(rf"\d+|{_DIGIT_WORD}", bare):
                    return None
            elif not bare or (
                bare in _NOT_A_PASSWORD
                and not spelled
                and not (bare in _VALUE_IF_DIGITS_FOLLOW and _digits_follow(text, m.end()))
            ):
                return None
        elif bare in _VALUE_STOP or not bare:
            break
        end = m.start() + len(word)
        if word != raw:  # trailing punctuation ends the value
            break
    return end
