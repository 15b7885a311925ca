"""Turn a raw helpdesk ticket (short description + e-mail-ish description) into caller text.

The labelling guide builds a caller's words as ``short description + ". " + ~200 characters
of the cleaned description``: what a caller would say on the phone, without the e-mail
plumbing (headers, greetings, signatures, addresses). It also drops tickets no caller would
phone in (machine alerts, scheduler failures, HR-tool mails) and non-English tickets. Training
text must be built the same way as the evaluation text, so this module is the one place that
does it.
"""

from __future__ import annotations

import re

DESCRIPTION_CHARS = 200

_ESCAPED = re.compile(r"_x([0-9a-fA-F]{4})_")


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as cp1252/latin-1 (``whatÂ´s`` -> ``what´s``), when that is what it is.

    Spreadsheet exports also escape control bytes as ``_x008d_``; those are put back first.
    """
    text = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)
    if text.isascii():
        return text
    raw = bytearray()
    for ch in text:
        try:
            raw += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) > 255:
                return text  # real non-Latin text, not mojibake
            raw.append(ord(ch))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return text


_RECEIVED = re.compile(r"^\s*received from:.*$", re.I | re.M)
_HEADER = re.compile(
    r"^\s*(from|sent|to|cc|bcc|subject|date|von|gesendet|an|betreff|datum|kimden|gönderildi|"
    r"gönderen|kime|konu|bilgi|tarih|envoyé|objet|de|para|assunto|enviada em)\s*:.*$",
    re.I | re.M,
)
_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|tr|转发|回复)\s*[:：]\s*)+", re.I)
_EMAIL = re.compile(r"\S+@\S+")
_CID = re.compile(r"\[cid:[^\]]*\][^\n]{0,60}", re.I)
_MAILTO = re.compile(r"<mailto:[^>]*>", re.I)
_GREETING = re.compile(
    r"^\s*(hello|hallo|hi|hey|dear|good (morning|afternoon|evening|day)|greetings|"
    r"guten (tag|morgen)|sehr geehrte\w*|liebe\w*)\b[^\n.!?:]{0,40}?[,!:.\n]",
    re.I,
)
_SIGNOFF = re.compile(
    r"(^|\n|(?<=[.!?,])\s*|\s)(best regards|kind regards|warm regards|with regards|many thanks|"
    r"thanks in advance|thank you|thanks|regards|cheers|sincerely|mit freundlichen|viele grüße|"
    r"freundliche grüße|saludos|atenciosamente)\b[\s\S]*$"
    r"|(^|\n)\s*(best|warm|kind|br|thx|rgds|yours|gruß)\s*[,.!]?\s*(\n[\s\S]*)?$",
    re.I,
)
_PRINTER_FORM = re.compile(
    r"please complete all required questions below[\s\S]*?detailed description of the problem\s*\??"
    r"([\s\S]*?)(type of documents not printing|$)",
    re.I,
)
_ERP_FORM = re.compile(
    r"system \(SID_34[\s\S]*?describe the issue:([\s\S]*?)"
    r"(if you are getting a \"not authorized\"|provide access the same|$)",
    re.I,
)
_FORM = re.compile(
    r"\b(name|language|browser|email|customer number|telephone|summary|"
    r"printer name|printer model|location|user id|contact number)\s*:",
    re.I,
)
_BULLET = re.compile(r"(^|\n)\s*([-*•·>]+|\d+[.)])\s+")
_SPACE = re.compile(r"\s+")


def clean_description(text: str) -> str:
    """Strip the e-mail plumbing from a ticket description, keeping what the caller said."""
    text = fix_mojibake(text or "")
    for form in (_PRINTER_FORM, _ERP_FORM):
        filled = form.search(text)
        if filled:
            text = filled.group(1)
    text = _RECEIVED.sub(" ", text)
    text = _HEADER.sub(" ", text)
    text = _MAILTO.sub(" ", text)
    text = _CID.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = text.strip()
    text = _PREFIX.sub("", text)
    for _ in range(2):
        text = _GREETING.sub("", text.lstrip(), count=1)
    # sign-offs end the message: everything after "best regards" is a signature
    match = _SIGNOFF.search(text)
    if match:
        text = text[: match.start()]
    # web-form wrappers: keep the summary line
    if len(_FORM.findall(text)) >= 3:
        summary = re.search(r"summary\s*:(.*)", text, re.I | re.S)
        text = summary.group(1) if summary else _FORM.sub(" ", text)
    text = _BULLET.sub(r"\1", text)
    return _SPACE.sub(" ", text).strip(" ,;:-")


def cut_at_word(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else text[:limit]).rstrip(" ,;:-")


def caller_text(short_description: str, description: str) -> str:
    """``short description + ". " + ~200 cleaned characters of the description``."""
    short = _SPACE.sub(" ", _PREFIX.sub("", fix_mojibake(short_description or ""))).strip()
    short = _EMAIL.sub("", short).strip(" .,:;-")
    body = clean_description(description)
    if short and body.lower().startswith(short.lower()):
        body = body[len(short) :].lstrip(" .,:;-")
    body = cut_at_word(body)
    if not short:
        return body
    if not body:
        return short
    return f"{short}. {body}"


_MACHINE = re.compile(
    r"job_scheduler|failed in job|\babend|monitoring_tool@|\bevent:\s*(critical|warning)|"
    r"threshold|\bdisk (space|usage|utili[sz]ation)|\bcpu (usage|utili[sz]ation|load)|"
    r"\bprocess .{0,40}(not running|down)|\b(is|are) (hard )?down since|"
    r"(down|up) since \d|what type of outage|\bnoc\b|power outage:|circuit outage|"
    r"security incidents\b|incident overview|"
    r"\bsecurity incident\s*[-:#]|\bpmr\b|\bterminate action|kündigung|"
    r"request to reset (your )?(microsoft )?online services password|"
    r"wrong number of instances|source ip:|\bincident #?in\d+|"
    r"space (utili[sz]ation|consumed)|offline since|patching_antivirus|"
    r"would like to recall the message|recall(ed)? (of )?(the )?message",
    re.I,
)


def is_machine_generated(short_description: str, description: str) -> bool:
    """Scheduler failures, monitoring alerts, outage templates, HR-tool and recall mails."""
    return bool(_MACHINE.search(f"{short_description}\n{description}"))


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"[a-zäöüßéèáàíóúãõçñ]+", re.I)
_FOREIGN = set(
    # German
    "der die das und nicht ist mit bitte ich ein eine kann für auf bei den dem wir sie es"
    " nach wird werden sind auch noch kein keine funktioniert geht drucker rechner probleme"
    " problem mehr ihr ihre herr frau vielen dank gruß grüße hallo zugriff fehler möglich"
    " benötigt benutzer passwort anmelden druckt defekt durchwahl ersatz erstellen nutzer"
    " gesperrt konto einlegen festplatte"
    # Portuguese / Spanish
    " não para com uma está você obrigado favor por el los las una del que se esta"
    " estão tem sem como muito boa dia buenos gracias usuario usuário senha acesso equipo"
    " impressora impresora correo erro fazer formatar necessito necesito".split()
)
_ENGLISH = set(
    "the and to is not in of for on my i it be can you please with have this that unable"
    " user an at are from was we me no do has need issue access password when error".split()
)


def is_english(text: str) -> bool:
    """A stop-word vote; any Chinese/Japanese/Korean text counts as not English."""
    text = _EMAIL.sub(" ", fix_mojibake(text))
    if _CJK.search(text):
        return False
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return True
    foreign = sum(w in _FOREIGN for w in words)
    english = sum(w in _ENGLISH for w in words)
    if any(ch in text.lower() for ch in "äöüßãõç") and foreign >= 1 and english <= foreign:
        return False
    if foreign and not english:
        return False
    return foreign < 2 or english > foreign * 1.5
