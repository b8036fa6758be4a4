"""Recording: run a step in its image and journal it; the step graph; packing from the journal
(spec/recording.md)."""

from __future__ import annotations

from .graph import StepGraph
from .journal import Journal, JournalEntry, find_project
from .lineage import pack_from_journal
from .run import RunOutcome, run_step

__all__ = [
    "Journal",
    "JournalEntry",
    "RunOutcome",
    "StepGraph",
    "find_project",
    "pack_from_journal",
    "run_step",
]
