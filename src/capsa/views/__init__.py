"""Views of a bundle's provenance for people: file history and the one-screen summary."""

from __future__ import annotations

from .history import History, HistoryStep, bundle_history, history_of, journal_history, to_dot
from .summary import summarize

__all__ = [
    "History",
    "HistoryStep",
    "bundle_history",
    "history_of",
    "journal_history",
    "summarize",
    "to_dot",
]
