"""Replay: re-run a bundle's steps in their images and compare every output (spec/replay.md)."""

from __future__ import annotations

from .attest import write_replay_attestation
from .engine import replay
from .report import OutputReport, ReplayReport, StepReport

__all__ = ["OutputReport", "ReplayReport", "StepReport", "replay", "write_replay_attestation"]
