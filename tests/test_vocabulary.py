"""The words Whisper is told to expect come from this deployment's own runbooks and taxonomy."""

from __future__ import annotations

from voice_agent.engines import stt_vocabulary
from voice_agent.settings import load_settings
from voice_agent.speech.vocabulary import build_vocabulary, is_distinctive, terms_from


def test_only_words_a_general_model_gets_wrong_are_chosen():
    assert [w for w in ("VPN", "OneDrive", "Wi-Fi", "Citrix") if is_distinctive(w)] == [
        "VPN", "OneDrive", "Wi-Fi", "Citrix"
    ]  # fmt: skip
    assert not any(is_distinctive(w) for w in ("printer", "The", "Password", "I"))
    # a title's first word is capitalised whatever it is
    assert terms_from(["External monitor not working", "Laptop slow in Citrix"]) == ["Citrix"]


def test_the_vocabulary_is_a_sentence_with_the_companys_terms_first():
    text = build_vocabulary(
        runbook_texts=["VPN won't connect", "Sign-in to Workday for SAP users", "SAP GUI crashes"],
        extra_terms=["Salesforce"],
        max_terms=16,
    )
    assert text.startswith("A caller tells the IT helpdesk about Salesforce, VPN, Outlook")
    assert text.endswith(".") and "SAP" in text and "Workday" in text and "\n" not in text
    assert text.index("SAP") < text.index("Workday")  # the words the runbooks use most first


def test_the_deployment_vocabulary_follows_its_runbooks(small_engines, tmp_path):
    vocabulary = small_engines.stt.vocabulary
    for term in ("VPN", "OneDrive", "BitLocker", "MFA", "Wi-Fi"):
        assert term in vocabulary
    off = load_settings(data_dir=tmp_path, stt_vocabulary=False)
    assert stt_vocabulary(off, small_engines.knowledge) == ""
    extra = load_settings(data_dir=tmp_path, stt_vocabulary_terms=["Citrix Workspace"])
    assert "Citrix Workspace" in stt_vocabulary(extra, small_engines.knowledge)
