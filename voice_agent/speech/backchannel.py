"""Backchannels: what a caller says while the agent talks to show they are listening ("mm-hm",
"okay", "yeah", "got it"), not to take the turn.

A caller following a runbook step says these all the time. Said over the agent they must not cut
it off; said after it, they are answers ("Is that right?" "Yeah.") and are heard as usual, so the
recogniser only treats words as a backchannel while the agent is still speaking.
"""

from __future__ import annotations

import re

# every word of a backchannel is one of these; Whisper writes "mm-hm" many ways ("Mm-hmm",
# "Mhm", "Hmm", "Uh-huh"), hyphens are dropped before the lookup
_WORDS = frozenset(
    """
    mm mmm mmmm mhm mmhm mmhmm mhmm hm hmm hmmm uh uhhuh uhuh huh ah aha ahh oh ooh
    yeah yea yep yup yes ya yah okay ok okey kay right alright sure
    i see got it gotcha understood cool great good fine perfect thanks thank you that's
    """.split()
)
# a hum as Whisper spells it over a phone line: "MNM", "Mmm", "Hmm", "Uh-huh", "Ahh"
_HUM = re.compile(r"[mnh]*m[mnh]*|u+h+(u+h+)*|a+h+")
_MAX_WORDS = 4  # "okay, I got it", "yeah, that's fine"; a longer utterance says something
_WORD = re.compile(r"[a-z']+")


def is_backchannel(text: str) -> bool:
    """True for a short acknowledgement with no content ("Mm-hmm.", "Okay, got it."); False for
    anything else, including no words at all and a "no" or "wait" (those take the turn)."""
    words = _WORD.findall(text.lower().replace("-", ""))
    return 0 < len(words) <= _MAX_WORDS and all(w in _WORDS or _HUM.fullmatch(w) for w in words)
