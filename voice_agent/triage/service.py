"""The triage service the call flow uses: category, priority, escalation and assignment group.

Loaded once per process (:meth:`Triager.load`) and shared by every call. ``classify`` is the
hot path: the classifier alone, tens of milliseconds. ``triage`` asks the language model too,
but only when the classifier's confidence is below ``triage_min_confidence``, with a time box;
if the model fails or is slow the classifier's answer stands.

The priority comes from the labelling guide's impact rules (:mod:`rules`) applied to the
category: they turn on a few words ("all users", "locked out", "how do I") that decide the
priority more reliably than a classifier trained on a handful of P1 examples.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from loguru import logger

from voice_agent.triage.classifier import ModelError, Prediction, TriageClassifier
from voice_agent.triage.llm_fallback import TriageLLMError, ask_local, ask_openai
from voice_agent.triage.rules import (
    CATEGORY_RULES,
    rule_category,
    rule_priority,
    security_incident,
)
from voice_agent.triage.taxonomy import Taxonomy, load_taxonomy

DEFAULT_MIN_CONFIDENCE = 0.6
LLM_CANDIDATES = 3  # the model chooses among the classifier's top categories


@dataclass(frozen=True)
class TriageResult:
    category: str
    priority: str
    confidence: float  # the classifier's probability for its category (1.0 from the LLM: n/a)
    source: str  # "classifier" | "llm" | "rules"
    latency_secs: float
    escalate: bool
    assignment_group: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_call(self, *, latency_secs: float | None = None) -> dict[str, Any]:
        """What a call keeps of this result: category, priority, confidence (3 places), source,
        then escalation and assignment group (the conversation's state); given ``latency_secs``
        (the call record the console shows), the latency in milliseconds in their place."""
        out: dict[str, Any] = {
            "category": self.category,
            "priority": self.priority,
            "confidence": round(float(self.confidence), 3),
            "source": self.source,
        }
        if latency_secs is None:
            out["escalate"] = bool(self.escalate)
            out["assignment_group"] = self.assignment_group
        else:
            out["latency_ms"] = round(latency_secs * 1000, 1)
        return out


class Triager:
    """Classifier + guide rules + optional LLM fallback over one taxonomy."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        classifier: TriageClassifier,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        llm_engine: Any = None,
        openai_base_url: str | None = None,
        openai_model: str | None = None,
        openai_api_key: str = "not-needed",
        llm_timeout_secs: float = 6.0,
        priority_rules: bool = True,
    ) -> None:
        missing = sorted(set(taxonomy.category_names) - set(classifier.categories))
        extra = sorted(set(classifier.categories) - set(taxonomy.category_names))
        if missing or extra:
            raise ModelError(
                f"the triage model's categories do not match the taxonomy {taxonomy.source}: "
                f"missing from the model {missing}, unknown to the taxonomy {extra}; "
                "train a model for this taxonomy with `voice-agent triage train`"
            )
        bad = sorted(set(classifier.priorities) - set(taxonomy.priority_names))
        if bad:
            raise ModelError(f"the triage model has priorities {bad} unknown to the taxonomy")
        self.taxonomy = taxonomy
        self.classifier = classifier
        self.min_confidence = min_confidence
        self.llm_engine = llm_engine
        self.openai_base_url = openai_base_url
        self.openai_model = openai_model
        self.openai_api_key = openai_api_key
        self.llm_timeout_secs = llm_timeout_secs
        # the guide's rules know the default taxonomy's names only
        self.priority_rules = priority_rules and set(taxonomy.priority_names) == {
            "P1",
            "P2",
            "P3",
            "P4",
        }
        self.category_rules = {r.label for r in CATEGORY_RULES} <= set(taxonomy.category_names)

    @classmethod
    def load(cls, settings: Any, llm_engine: Any = None) -> Triager:
        """Taxonomy and model from the settings; the LLM only if ``triage_llm_fallback``."""
        taxonomy = load_taxonomy(settings.triage_taxonomy)
        classifier = TriageClassifier.load(settings.triage_model)
        use_llm = settings.triage_llm_fallback
        openai = use_llm and settings.llm_backend == "openai" and settings.llm_base_url
        return cls(
            taxonomy,
            classifier,
            min_confidence=settings.triage_min_confidence,
            llm_engine=llm_engine if use_llm else None,
            openai_base_url=settings.llm_base_url if openai else None,
            openai_model=settings.llm_model,
            openai_api_key=settings.llm_api_key,
            llm_timeout_secs=settings.triage_llm_timeout_secs,
        )

    @property
    def has_llm(self) -> bool:
        return self.llm_engine is not None or self.openai_base_url is not None

    def should_escalate(self, result: TriageResult) -> bool:
        return self.taxonomy.should_escalate(result.category, result.priority)

    def _result(
        self, category: str, priority: str, confidence: float, source: str, started: float
    ) -> TriageResult:
        return TriageResult(
            category=category,
            priority=priority,
            confidence=round(confidence, 4),
            source=source,
            latency_secs=time.perf_counter() - started,
            escalate=self.taxonomy.should_escalate(category, priority),
            assignment_group=self.taxonomy.category(category).assignment_group,
        )

    def _priority(self, text: str, category: str, model_priority: str) -> str:
        if self.priority_rules:
            return rule_priority(text, category)[0]
        return model_priority

    def classify(self, text: str) -> TriageResult:
        """Classifier only, no language model: the hot path (tens of milliseconds).

        When the classifier is unsure and one of the guide's keyword rules matches, the rule
        decides (``source="rules"``): on uncertain texts the rules are right more often.
        """
        started = time.perf_counter()
        text = " ".join((text or "").split())
        return self._without_llm(text, self.classifier.predict(text), started)

    def with_category(self, text: str, category: str) -> TriageResult:
        """The triage of a call whose category the conversation already knows (a caller asking
        about an existing ticket): the priority still follows the guide's rules."""
        started = time.perf_counter()
        text = " ".join((text or "").split())
        self.taxonomy.category(category)  # unknown names fail here
        return self._result(category, self._priority(text, category, "P3"), 1.0, "rules", started)

    def _without_llm(self, text: str, pred: Prediction, started: float) -> TriageResult:
        if not text and self.category_rules and self.priority_rules:
            return self._result("other", "P4", 1.0, "rules", started)  # the guide: blank call
        if self.category_rules and (
            security_incident(text) or rule_category(text) == ("security", "security")
        ):
            # a security report or incident is security whatever the words sounded like to the
            # classifier (a phishing mail is not an email problem); incidents escalate
            priority = self._priority(text, "security", pred.priority)
            confidence = pred.category_probs.get("security", 0.0)
            return self._result("security", priority, confidence, "rules", started)
        if pred.category_confidence < self.min_confidence and self.category_rules:
            matched = rule_category(text)
            if matched is not None and matched[0] != pred.category:
                category = matched[0]
                priority = self._priority(text, category, pred.priority)
                confidence = pred.category_probs.get(category, 0.0)
                return self._result(category, priority, confidence, "rules", started)
        priority = self._priority(text, pred.category, pred.priority)
        return self._result(
            pred.category, priority, pred.category_confidence, "classifier", started
        )

    async def triage(self, text: str) -> TriageResult:
        """Classifier first; the language model decides when the classifier is unsure."""
        started = time.perf_counter()
        text = " ".join((text or "").split())
        pred = await asyncio.to_thread(self.classifier.predict, text)
        if pred.category_confidence >= self.min_confidence or not self.has_llm or not text:
            return self._without_llm(text, pred, started)
        probs = pred.category_probs
        ranked = sorted(probs, key=lambda category: probs[category], reverse=True)
        candidates = ranked[:LLM_CANDIDATES]
        matched = rule_category(text) if self.category_rules else None
        if matched is not None and matched[0] not in candidates:
            candidates.append(matched[0])
        try:
            category, llm_priority = await self._ask_llm(text, candidates)
        except TriageLLMError as e:
            logger.warning(f"triage: language model fallback failed ({e}); using the classifier")
            return self._without_llm(text, pred, started)
        priority = self._priority(text, category, llm_priority)
        return self._result(category, priority, pred.category_probs[category], "llm", started)

    async def _ask_llm(self, text: str, candidates: list[str]) -> tuple[str, str]:
        if self.openai_base_url:
            return await ask_openai(
                self.openai_base_url,
                self.openai_model or "default",
                self.taxonomy,
                text,
                api_key=self.openai_api_key,
                candidates=candidates,
                timeout_secs=self.llm_timeout_secs,
            )
        return await ask_local(
            self.llm_engine,
            self.taxonomy,
            text,
            candidates=candidates,
            timeout_secs=self.llm_timeout_secs,
        )
