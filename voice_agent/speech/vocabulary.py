"""The words this deployment expects callers to say, for the speech recogniser.

Whisper decodes an 8 kHz phone line far better when it knows what is likely: told nothing, it
hears "My VPN won't connect" as "My maybe hand won't connect" in an espeak-ng voice. The
vocabulary is built from what the company has: its runbooks' titles and tags, the triage
taxonomy's glosses and any terms in ``stt_vocabulary_terms``; it follows a company's own
knowledge base (its product names, its systems) without a code change.

What goes in is what a general English model gets wrong: names of products and systems (Outlook,
OneDrive, BitLocker), acronyms (VPN, MFA) and odd spellings (Wi-Fi). Ordinary words ("printer",
"password") are heard well already and would only crowd the prompt. The text is handed to Whisper
as earlier conversation (``initial_prompt``), which costs one extra forward pass over at most
~80 tokens per decode and works together with a forced prefix.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

MAX_TERMS = 40  # Whisper keeps the last 223 prompt tokens; a short prompt decodes faster
LEAD = "A caller tells the IT helpdesk about"
# in every helpdesk, whatever its runbooks say: how ticket numbers and common systems sound
CORE_TERMS = ("VPN", "Outlook", "Teams", "OneDrive", "MFA", "Wi-Fi", "ticket", "INC")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*")
_ORDINARY_CAPITALISED = set(
    """I A An The My How What Why When Where Which Who Your You Can Cannot Can't Won't Not No New
    Lost Use Set Get Fix Add Reset Request Requests Access Error Errors Steps Step Symptoms Before
    After If Or And For With From To In On At Of By Is Are Do Does Don't Doesn't It Its This That
    Company Office Windows Microsoft Email Mail Password Printer Phone Laptop Computer Help Desk
    Helpdesk Support Account Sign Log Start Open Close Keeps Stuck Slow Missing Working
    Not""".split()
)


def has_marked_shape(token: str) -> bool:
    """An acronym (VPN), a CamelCase name (OneDrive) or capitalised parts (Wi-Fi)."""
    if len(token) < 2:
        return False
    if token.isupper() and token.isalpha() and len(token) <= 6:
        return True
    if re.search(r"[a-z][A-Z]", token):
        return True
    return "-" in token and all(part[:1].isupper() for part in token.split("-"))


def is_distinctive(token: str) -> bool:
    """A word Whisper needs to be told: an acronym, a CamelCase or hyphenated product name, or a
    capitalised name that is not an ordinary English word."""
    if len(token) < 2:
        return False
    if has_marked_shape(token):
        return True
    return token[0].isupper() and token not in _ORDINARY_CAPITALISED and token.lower() != token


def terms_from(texts: Iterable[str]) -> list[str]:
    """Distinctive words by how often the texts use them (most first), first spelling kept.
    A capitalised word opening a text counts only if its shape marks it (VPN, OneDrive): a
    title's first word is capitalised whatever it is ("External monitor not working")."""
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for text in texts:
        for i, token in enumerate(_TOKEN.findall(text or "")):
            if i == 0 and not has_marked_shape(token):
                continue
            if is_distinctive(token):
                key = token.lower()
                spelling.setdefault(key, token)
                counts[key] += 1
    return [spelling[k] for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def build_vocabulary(
    *,
    runbook_texts: Iterable[str] = (),
    taxonomy_texts: Iterable[str] = (),
    extra_terms: Iterable[str] = (),
    max_terms: int = MAX_TERMS,
) -> str:
    """The prompt Whisper is given, a sentence rather than a list (a list prompt made Whisper
    write lists: "Yes, that's right" came out as "CS, Netflix,"):
    ``"A caller tells the IT helpdesk about VPN, Outlook, ... and BitLocker."``."""
    chosen: list[str] = []
    seen: set[str] = set()
    for term in [
        *(t.strip() for t in extra_terms),
        *CORE_TERMS,
        *terms_from(taxonomy_texts),
        *terms_from(runbook_texts),
    ]:
        if term and term.lower() not in seen:
            seen.add(term.lower())
            chosen.append(term)
    terms = chosen[:max_terms]
    if len(terms) > 1:
        return f"{LEAD} {', '.join(terms[:-1])} and {terms[-1]}."
    return f"{LEAD} {''.join(terms)}."
