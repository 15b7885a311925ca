"""The labelling guide's rules, written as ordered keyword patterns: transparent and testable.

They label the historical tickets the default classifier learns from, and they set the priority
at run time: priority follows the impact the caller describes (how many people, fully blocked
or with a workaround, a request or a question), which a few words decide more reliably than a
classifier trained on a few hundred examples of P1. Order matters and encodes the guide's
exceptions: a VPN login is ``network`` (VPN before passwords), Outlook prompting for a password
is ``email`` (before passwords), access to a drive folder is ``account_access`` (before network
drives), a ticket number plus a new problem is labelled by the problem. For priority, a fault
the caller describes outranks polite request phrasing ("I get an error, can you look into it"
is P3, not a P4 request).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.I)


@dataclass(frozen=True)
class Rule:
    name: str
    label: str
    pattern: re.Pattern[str]


_DEVICE = r"(laptop|phone|mobile|iphone|device|ipad|cell ?phone|computer|notebook|tablet)"
_LEFT_BEHIND = (
    r"\b(left|forgot|dropped) (my |the |a |our )?(work |company )?" + _DEVICE + r" (on|in|at) "
    r"(the |a )?(train|bus|taxi|cab|plane|flight|airport|car|restaurant|bar|cafe|hotel|station)"
    r"|\b(someone|somebody) (took|has taken|nicked|grabbed) (my |the )?(work )?"
    + _DEVICE
    + r"|\bcan'?t find (my |the )?(work |company )?"
    + _DEVICE
)
# a security incident in progress, whatever the words: credentials given away, malware run
_CREDENTIALS_GIVEN = (
    r"\b(typed|entered|gave|put in|submitted|shared|filled in|logged in)\b[^.?!]{0,40}"
    r"\b(password|credentials|log ?in|login details|bank details|card details|pin|username)"
)

CATEGORY_RULES: tuple[Rule, ...] = (
    Rule(
        "blank_call",
        "other",
        _rx(
            r"\b(blank|missed|dropped|disconnected|abandoned|silent|empty|ghost) calls?\b",
            r"\bcalls? (was )?(dropped|disconnected)\b",
            r"\bgerman call\b",
            r"^\s*(test|testing|uacyltoe hxgaycze)\b",
            r"\btest (ticket|call|incident)\b",
            r"^\s*(caller )?(hung up|call ended)",
            r"^\s*no (voice|response) (from|on) (the )?(caller|line)",
        ),
    ),
    Rule(
        "ticket_update",
        "ticket_status",
        _rx(
            r"\bticket[ _]?(update|status|query|follow)",
            r"\b(update|status|follow[- ]?up|progress|eta) (on|of|for|regarding|about) "
            r"(the |my |his |her |an? |this |our )?(ticket|inc|incident|request|case|call)",
            r"\b(called|calling|call|asked|asking|checking|wants?|needs?) (in )?for (an? )?"
            r"(update|status)",
            r"\bescalat\w* (the |of |an? |this |my )?(open )?(ticket|inc|incident|request)",
            r"\b(comment|comments|note) (on|to|for) (the |my )?(ticket|inc|incident)",
            r"\b(re-?open|reopen)\w* (the |my )?(ticket|inc|incident)",
            r"\b(ticket|inc|incident) (still )?(not|hasn't|has not) (been )?(resolved|updated)",
        ),
    ),
    Rule(
        "file_restore",
        "other",
        _rx(
            r"\brestor\w* (the |my |a |deleted |lost )*(file|folder|data|document)",
            r"\brecover\w* (the |my |a |deleted |lost )*(file|folder|data|document)",
            r"\b(deleted|lost|removed|overwrote)\b.{0,40}\b(files?|folders?|documents?|data)\b"
            r".{0,60}\b(restore|recover|get (it|them) back|bring (it|them) back)",
            r"\b(server|disk|drive) (storage|space|maintenance|extension|expansion)\b",
            r"\b(increase|extend|expand)\w* (the )?(server |disk |drive )?(space|storage|quota)",
        ),
    ),
    Rule(
        "security",
        "security",
        _rx(
            r"\bvirus",
            r"malware|trojan|ransomware|spyware|adware|\bworm\b",
            r"phish",
            r"\bspam",
            r"suspicious|suspect\w* (e-?mail|mail|link|message)",
            r"\b(strange|odd|weird|fake|dodgy|scam)\w* (e-?mail|mail|link|message|text|call)",
            r"\b(e-?mail|message|text)\b.{0,40}\b(confirm|verify|update) (my |your )?(bank|card|"
            r"account|payment|login) (details|information|info)",
            r"bitlocker|recovery key|encryption key",
            r"\bhack(ed|er|ing)?\b",
            r"\binfected\b",
            r"\b(lost|stolen|missing|misplaced) (my |his |her |the |a |an |company |work )?"
            r"(laptop|phone|mobile|iphone|device|ipad|cell|computer|notebook|tablet)",
            r"(laptop|phone|mobile|iphone|device|ipad|computer|notebook|tablet) "
            r"(was |got |has been |is |went )?(lost|stolen|missing)",
            _LEFT_BEHIND,
        ),
    ),
    Rule(
        "vpn_wifi_internet",
        "network",
        _rx(
            r"\bvpn\b",
            r"wi-?fi|wireless|\bwlan\b|\bssid\b",
            r"\blan\b|ethernet|network cable|lan cable",
            r"internet(?! explorer)",
            r"\bno network\b",
            r"\b(reach|get on|get onto|get into) (the )?(network|internet)\b",
            r"network (is )?(down|not working|issue|problem|connection|connectivity)",
            r"(not|cannot|can't|cant|unable to) connect(ed)? to (the )?network",
            r"\bdns\b|\bproxy\b|\bip address\b|\bdhcp\b",
        ),
    ),
    Rule(
        "outlook_password_prompt",
        "email",
        _rx(
            r"outlook.{0,50}(prompt|asking|asks|ask for|keeps|pop).{0,30}(password|credential)",
            r"(password|credential)s? (prompt|pop).{0,40}outlook",
            r"outlook (is )?(not )?(taking|accepting|asking)\w* (for )?(my |the )?password",
        ),
    ),
    Rule(
        "mailbox_access",
        "email",
        _rx(
            r"shared mailbox|distribution list|\bdl\b|mailbox|delegat",
            r"(unable to|cannot|can't|cant|not able to) (access|open|see|receive|send)\w* "
            r"(my |the )?(e-?mails?|outlook|mails?|inbox|calendar)",
            r"(e-?mail|outlook|mail).{0,20}(on|in|to) (my |the |his |her |a )?(mobile|phone|"
            r"iphone|android|ipad|cell)",
            r"(mobile|phone|iphone|device|ipad).{0,25}activation|active ?sync|quarantin",
        ),
    ),
    Rule(
        "account_access",
        "account_access",
        _rx(
            r"pass ?word|passwort|\bpwd\b|\bpw\b",
            r"\bunlock|\blocked|lock(ed)? ?out|lockout|account (is )?(disabled|expired|blocked)",
            r"\blog ?in|\blog ?on|\bsign ?in|\bsign ?on|authenticat|\bsso\b|credential",
            r"\blogging (in|on)\b|\bsigning (in|on)\b|\blogged (out|off)\b",
            r"\breset (my |the |his |her |a )?(\w+ ){0,3}(access|account|id)\b",
            r"\b(re-?)?activat\w* (the |my |his |her )?(user |ad |windows )?(account|id)\b",
            r"\b(full|read|write|read/write|modify|edit) access\b",
            r"\baccess(ing)? (to|for|request|rights|right|issue|problem|denied)",
            r"\b(need|request|requesting|provide|grant|give|require|add|get|want)\w* "
            r"(\w+ ){0,3}(access|permission|authori[sz]ation|rights)",
            r"permission|authori[sz]ation|not authori[sz]ed|\brole\b|\bprofile\b",
            r"\bnew (user|employee|starter|hire|joiner)|(user|account) (id )?"
            r"(creation|create|setup|set up|deactivat|terminat|removal|delete)",
            r"create (an? |new )?(user|account|id)|terminat\w* (user|employee|account)",
            r"(unable to|cannot|can't|cant|not able to|no|lost) access",
            r"password_management_tool|\bad account|active directory|user ?id\b",
        ),
    ),
    Rule(
        "network_drive",
        "network",
        _rx(
            r"network (drive|share|folder|path|location)",
            r"\bmap(ped|ping)? (a |the |network |shared )?(drive|folder|share)",
            r"drive mapping|shared drive|\b[a-z]: ?drive\b",
        ),
    ),
    Rule(
        "printer",
        "printer",
        _rx(
            r"print|drucker|\bscan|toner|zebra|plotter|copier|xerox|\bmfp\b|paper jam|cartridge",
        ),
    ),
    Rule(
        "email",
        "email",
        _rx(
            r"outlook|\bowa\b|e-?mails?\b|\bmails?\b|calendar|\binbox|exchange|meeting invit",
            r"\bsend(ing)? mail|\bmail (box|server|client)",
        ),
    ),
    Rule(
        "phone",
        "phone",
        _rx(
            r"\bphones?\b|telephon|softphone|telephony|\bavaya\b|jabber|voicemail|voice mail",
            r"\bcall (cent(er|re)|routing|forwarding|queue)|\bhunt group|\bextension\b",
            r"skype.{0,30}(audio|sound|voice|call|hear|mic)|(audio|sound|voice|hear|mic)"
            r".{0,30}skype",
            r"\b(make|receive|place|take|answer)\w* (any )?(incoming |outgoing )?calls?\b",
            r"cell ?phone|\bdial",
        ),
    ),
    Rule(
        "hardware_fault",
        "hardware",
        _rx(
            r"won'?t (boot|start|turn on|power)|not (booting|starting|turning on|powering)",
            r"(does|do|will|would) not (boot|start|turn on|power on)|\bboot",
            r"\bbsod\b|blue ?screen|black screen|\bmonitors?\b|docking|\bdock\b",
            r"screen (is )?(black|blank|flicker|broken|cracked|dark|not working|problem|issue)",
            r"(laptop|pc|computer|tablet|touch) ?screen|\baudio\b|\bvolume\b|\bsound\b",
            r"keyboard|\bmouse\b|battery|charger|power (button|supply|adapter|cord|cable)",
            r"headset|speaker|microphone|webcam|camera|\busb\b|hard ?drive|\bhdd\b|\bssd\b",
            r"hardware|setup new|new (ws|workstation|laptop|pc|computer|desktop)|\bws\b",
            r"\basset\b|service tag|replace|projector|\bbios\b|overheat|\bfan\b|noise",
            r"(laptop|pc|computer|desktop) .{0,30}(broken|damaged|dead|slow|hang|freez|restart)",
        ),
    ),
    Rule(
        "software",
        "software",
        _rx(
            r"\berp\b|\bsid_?\d*|\bcrm\b|\bsap\b|\bhana\b|\bbw\b|\bbex\b|\bmii\b|abap",
            r"install|licen[sc]e|activat|software|application|\bapps?\b|program",
            r"error|crash|not responding|freez|\bhang|updat|upgrade|version|\bslow\b",
            r"excel|\bword\b|powerpoint|\boffice\b|adobe|acrobat|\bpdf\b|java|browser|explorer",
            r"chrome|firefox|collaboration_platform|onedrive|sharepoint|\bsync|skype|teams",
            r"citrix|_tool\b|\btool\b|report|workflow|deliver|pricing|\bprice|invoice|\border",
            r"material|transaction|\bpo\b|purchase|billing|vendor|customer|screensaver|font",
            r"\bess\b|payslip|portal|website|web ?site|\burl\b|\blink\b|settings|windows|\bos\b",
            r"database|\bdata\b|\bfiles?\b|\bfolder\b|attachment|document|field|\bserver\b",
        ),
    ),
    Rule("mobile_phone", "phone", _rx(r"\bmobile\b|iphone|android")),
    Rule(
        "hardware_device",
        "hardware",
        _rx(r"laptop|desktop|\bpc\b|computer|notebook|tablet|\bipad\b|device|machine"),
    ),
    Rule(
        "general",
        "other",
        _rx(
            r"\bquestion|\bgeneral|\bquery\b|\binformation\b|\bhelp\b|\bissue\b|\bproblem\b",
            r"\bcall(ed|ing)?\b|\bcaller\b",
        ),
    ),
)


def rule_category(text: str) -> tuple[str, str] | None:
    """(category, rule name) of the first rule that matches, or None."""
    for rule in CATEGORY_RULES:
        if rule.pattern.search(text):
            return rule.label, rule.name
    return None


# ---------------------------------------------------------------- priority

_MANY = _rx(
    r"\b(all|multiple|many|several|entire|whole|most|numerous|lots of) "
    r"(the )?(users|people|employees|staff|colleagues|site|plant|location|office|team|region|"
    r"branch|building|countries|sites|plants|locations|machines|pcs|computers|agents|"
    r"departments?|users?'|warehouse|factory|customer service)",
    r"\beveryone\b|\beverybody\b|for (all|everyone)\b",
    # "nobody can log in" is many people; "nobody can hear me" is one caller's microphone
    r"\b(nobody|no one|none of us) (can|is able to|are able to)\b(?! (hear|see|reach|understand|"
    r"call|contact|e-?mail|message|read) (me|us|my)\b)",
    r"\bnone of the (users|people|staff|pcs|computers|scanners|machines|devices|printers|phones)",
    r"\bwhole (shift|team|floor|department|office|site|building|warehouse) (is|are|has|can)",
    r"\b(site|plant|location|office|building|region|country|warehouse)\b.{0,20}"
    r"\b(is )?(down|offline|outage|not working|without)",
    r"\b(apac|emea|europe|\beu\b|\bna\b|north america|asia|americas|latam|china|india|germany|"
    r"usa)\b.{0,40}\b(slow|down|not working|outage|degraded|performance)",
    r"\b(unable|can ?not|can't|cant|not able) to work\b",
    r"\boutage\b|\bsystem (is )?down\b",
)
_ACTIVE_SECURITY = _rx(
    r"\bvirus|malware|trojan|ransomware|infected|\bhack(ed|er|ing)?\b|clicked|compromis",
    _CREDENTIALS_GIVEN,
    r"\b(opened|ran|downloaded|installed) (the |an? |that )?(attachment|file|program|link)",
)
_LOST_DEVICE = _rx(
    r"\b(lost|stolen|missing|misplaced) (my |his |her |the |a |an |our |company |work )*" + _DEVICE,
    _DEVICE + r" (was |got |has been |is |went |has gone )?(lost|stolen|missing)",
    _LEFT_BEHIND,
)
_SECURITY_BLOCKED = _rx(r"bitlocker|recovery key|encrypt")


def security_incident(text: str) -> str | None:
    """ "active" (credentials given away, a link or attachment opened, malware) or
    "lost_device" when the caller describes a security incident, whatever else the words are
    about; else None."""
    negated = re.search(
        r"\b(didn'?t|did not|haven'?t|have not|never|without|not) (click|open|type|enter|give|"
        r"put|download|run|reply|respond)",
        text,
        re.I,
    )
    malware = re.search(
        r"\bvirus|malware|trojan|ransomware|infected|\bhack(ed|er|ing)?\b", text, re.I
    )
    lured = (
        re.search(r"\bclicked\b", text, re.I)
        and re.search(r"link|e-?mail|message|pop-?up|button|attachment|text", text, re.I)
    ) or re.search(
        r"\b(opened|downloaded|ran|enabled)\b (on )?(a |an |the |that |this |some )?(\w+ ){0,2}"
        r"(attachment|macro|link)s?\b",
        text,
        re.I,
    )
    gave = re.search(_CREDENTIALS_GIVEN, text, re.I) and re.search(
        r"link|e-?mail|website|web ?site|site|page|form|someone|caller|pop-?up|message|fake|"
        r"phish|scam",
        text,
        re.I,
    )
    if not negated and (malware or lured or gave):
        return "active"
    if _LOST_DEVICE.search(text):
        return "lost_device"
    return None


_NON_CRITICAL_MULTI = ("printer", "network_wifi")
_PRIMARY_SYSTEM_BLOCK = _rx(
    r"pass ?word|passwort|\bunlock|\blocked|lock(ed)? ?out|lockout|expired|reset",
)
_AUXILIARY = _rx(
    r"\bess\b|payslip|pay slip|attendance|ethics|training|award|collaboration_platform|"
    r"hr_tool|\bportal\b|skype|\blync\b|benefit|travel|expense|survey|intranet|"
    r"sharepoint|onedrive|learning|\bhub\b",
)
_RECURRING = _rx(
    r"(keeps?|kept|keep on) (getting |being )?lock|again and again|repeatedly|frequently|"
    r"every (day|morning|time)|multiple times|recurring|again\b"
)
_BLOCKED = _rx(
    r"(unable|can ?not|can't|cant|not able|could not|couldn't) (to )?(log|sign|connect|login|"
    r"open|launch|start|access|boot|turn on|use|work)",
    r"\bfail(s|ed|ing)? to (log|sign|connect|open|launch|start|load|boot)",
    r"(unable|can ?not|can't|cant|not able|could not|couldn't) (to )?get (on|onto|into|in)\b",
    r"won'?t (open|start|launch|connect|boot|turn on|load)",
    r"(does|do|is|will) not (open|start|launch|connect|boot|turn on|load|work)",
    r"not (opening|starting|launching|connecting|booting|working|loading)",
    r"(login|log ?in|log ?on|sign ?in) (issue|problem|error|fail|balancing)",
    r"\bno (network|internet|connection|access)\b|\bdead\b|\bbsod\b|blue ?screen",
)
_REQUEST = _rx(
    r"\bhow (do|to|can|should|would)\b|\bhow\b.{0,10}\?",
    r"\brequest|\brequire|\bneed (a |an |the |to have )?(new|access|permission|install|"
    r"software|license|licence|setup|help (with|to) (set|install))",
    r"\bneed to (add|set up|setup|install|connect|get|map)\b",
    r"\bnew (user|account|access|device|laptop|phone|ws|workstation|printer|hire|starter|"
    r"employee|mobile|iphone|pc|monitor|joiner)",
    r"\bplease (provide|grant|give|add|create|install|setup|set up|enable|share|assign|change)",
    r"\binstall|\bsetup\b|\bset ?up\b|\bquestion|\bquery\b|\bqueries\b|\bwhy\b|\bwant(s|ed)? to\b",
    r"\b(change|increase|decrease|adjust)\w* (the )?(font|view|size|setting|display|layout)",
    r"\b(grant|give|provide|add)\w* .{0,20}(access|permission|rights)|\baccess (request|for)",
    r"\bactivat|\bpermission|\bauthori[sz]",
    r"\bcan (you|i|we|someone)\b|\bis it possible|\bi would like|\bplease help me to",
)


# a fault the caller describes: something broke or stopped, however politely it is asked about
# ("get an error, can you please look into this" is a problem, not a request: P3, not P4)
_FAULT = _rx(
    r"\berr+ors?\b|\bfail(s|ed|ure|ing)?\b|not working|\bno longer\b|disconnect\w*|\bstuck\b",
    r"\bcrash\w*|\bissues?\b|\bproblems?\b|not (recogni[sz]ed|maintained|copied|created|"
    r"saved|showing|displaying|updating|syncing)|\b(hasn'?t|has not|haven'?t|have not) been\b",
    r"\bno (display|signal|sound|audio|reply|response)\b|\b(can ?not|can'?t|cant|unable to) "
    r"(start|open|print|save|submit|see|view|load)\b",
)


def _is_request(text: str) -> bool:
    """A request, how-to or question (P4 by the guide), unless the words describe a fault."""
    return bool(_REQUEST.search(text)) and not _FAULT.search(text)


def rule_priority(text: str, category: str) -> tuple[str, str]:
    """(priority, reason) by the guide: impact first, then blocked, then requests, else P3."""
    multi = bool(_MANY.search(text))
    wifi = category == "network" and re.search(r"wi-?fi|wireless|wlan", text, re.I)
    if category == "security":
        incident = security_incident(text)
        if incident == "active" or (incident is None and _ACTIVE_SECURITY.search(text)):
            return "P1", "active_security_incident"
        if incident == "lost_device" or _LOST_DEVICE.search(text):
            return "P2", "lost_device"
        if _SECURITY_BLOCKED.search(text):
            return "P3", "encryption_blocked"
        return ("P3", "security_report") if multi else ("P4", "spam_report")
    if category in ("ticket_status",):
        return "P4", "status_update"
    if category == "other" and not multi:
        return "P4", "other"
    if multi:
        if category == "printer" or wifi:
            return "P2", "multi_user_non_critical"
        return "P1", "many_users_or_site"
    if category == "account_access":
        if _RECURRING.search(text) and re.search(r"lock", text, re.I):
            return "P3", "recurring_lockout"
        aux = _AUXILIARY.search(text)
        if _PRIMARY_SYSTEM_BLOCK.search(text):
            return ("P3", "auxiliary_site_sign_in") if aux else ("P2", "password_or_lockout")
        if _BLOCKED.search(text) and not _is_request(text):
            return ("P3", "auxiliary_site_sign_in") if aux else ("P2", "cannot_log_in")
        if _FAULT.search(text):
            return "P3", "access_fault"  # lost existing access, or an error where access was
        return "P4", "access_request"
    if category == "network":
        if wifi:
            return ("P4", "request") if _is_request(text) else ("P3", "wifi_degraded")
        if re.search(r"\bvpn\b|no network|no internet|network (is )?down", text, re.I) and (
            _BLOCKED.search(text) or re.search(r"no network|no internet|down", text, re.I)
        ):
            return "P2", "no_vpn_or_network"
        if _is_request(text):
            return "P4", "request"
        return "P3", "network_degraded"
    if category == "email":
        if re.search(r"activat|activesync|new (mobile|phone|iphone)", text, re.I):
            return "P4", "mail_on_phone_activation"
        if re.search(
            r"(outlook|mail).{0,30}(won'?t|not|unable|cannot|can't|cant|doesn'?t|does not)"
            r" ?(to )?(open|start|launch|connect|load|working)|"
            r"(unable|cannot|can't|cant|not able) (to )?(open|start|launch|access) (my )?"
            r"(outlook|e-?mails?|mailbox)|(outlook|mailbox) (is )?(not working|down|disconnected)|"
            r"outlook.{0,20}(crash|clos|clos)\w* (as soon as|when|whenever|every time|right after)",
            text,
            re.I,
        ):
            return "P2", "outlook_blocked"
        if _is_request(text):
            return "P4", "request"
        return "P3", "email_partial"
    if category == "hardware":
        if re.search(
            r"won'?t (boot|start|turn on|power)|not (booting|starting|turning on|powering)|"
            r"(does|do|will) not (boot|start|turn on|power)|\bbsod\b|blue ?screen|"
            r"(unable|cannot|can't|cant) (to )?(boot|start|turn on|log ?in)|\bdead\b",
            text,
            re.I,
        ):
            return "P2", "pc_will_not_start"
        if _is_request(text) or re.search(r"\basset\b|service tag|computer name", text, re.I):
            return "P4", "request"
        return "P3", "hardware_degraded"
    if category == "phone":
        if re.search(r"soft ?phone|telephony_software", text, re.I) and (
            _BLOCKED.search(text)
            or re.search(
                r"\b(no one|nobody|unable to|can'?t|cannot|not able to) (can )?hear", text, re.I
            )
        ):
            return "P2", "softphone_unusable"
        if _is_request(text):
            return "P4", "request"
        return "P3", "phone_degraded"
    if _is_request(text):
        return "P4", "request"
    if category == "software" and re.search(
        r"\b(I|[Ww]e) (need|want|would like)( to (get|have|install))? (a |an |the )?"
        r"(copy of |licen[cs]e for |new )?[A-Z][a-z]+",
        text,
    ):
        return "P4", "request"  # "I need Adobe Acrobat": a product, named as Whisper writes it
    if category == "software" and _BLOCKED.search(text) and not _AUXILIARY.search(text):
        return "P3", "app_blocked"
    return "P3", "single_user_with_workaround"
