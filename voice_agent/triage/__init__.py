"""Call triage: category, priority, escalation and assignment group from the caller's words.

:class:`Triager` is the service the call flow uses; the taxonomy lives in a TOML file
(:mod:`voice_agent.triage.taxonomy`), the default model in ``default_model/`` (plain arrays,
no pickle), and ``voice-agent triage`` labels, trains, evaluates and predicts.
"""

from voice_agent.triage.service import Triager, TriageResult
from voice_agent.triage.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

__all__ = ["Taxonomy", "TaxonomyError", "TriageResult", "Triager", "load_taxonomy"]
