"""Experiments of §4: one configuration → one result row, cached as artefacts (DESIGN §7)."""

from .cache import ArtefactStore, Experiment, data_fingerprint, source_fingerprint

__all__ = ["ArtefactStore", "Experiment", "data_fingerprint", "source_fingerprint"]
