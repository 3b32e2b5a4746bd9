"""Experiments of §4: one configuration → one result row, cached as artefacts (DESIGN §7)."""

from .cache import (ArtefactStore, Experiment, NotRunYet, data_fingerprint, if_stored, read_only, read_summary,
                    source_fingerprint, write_summary)

__all__ = ["ArtefactStore", "Experiment", "NotRunYet", "data_fingerprint", "if_stored", "read_only", "read_summary",
           "source_fingerprint", "write_summary"]
