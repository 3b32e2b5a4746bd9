"""Typed configurations read from ``params/<profile>.yaml`` and ``--params`` files (ours).

A profile is one parameter file and nothing else: ``params/<profile>.yaml`` holds a ``common``
section, one section per chapter, and the sections below, which this module reads into dataclasses:

========================  ======================================================================
section                   dataclass
========================  ======================================================================
``corpus``                :class:`Corpus`: sizes of the synthetic SEWA-like and RAF-like corpora
``04_3_finetuning``       :class:`Table1`: Table 1's rows and training settings (§4.3)
``04_4_cnn_lstm``         :class:`Table2`: Table 2's grid and training settings (§4.4)
``04_5_i3d``              :class:`I3D`: the i3D grid of Tables 4-6 and its settings (§4.5)
``run``                   :class:`Run`: what ``emorec run`` keeps on disk, the plan's assumptions
========================  ======================================================================

A ``--params FILE.yaml`` of the same structure is merged over the profile, key by key (:func:`merge`).
A key a typed section does not know is an error naming the file, the section and the key; so is a
missing one. Adding a setting is one line: a field of the section's dataclass (and a value in each
``params/*.yaml``). The chapters, ``emorec train`` and ``emorec run`` all read :func:`load`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .paths import project_root

PROFILES = ("smoke", "cpu", "paper")


class ConfigError(ValueError):
    """A parameter file is missing, malformed, or names an unknown or lacks a required key."""


# --------------------------------------------------------------------------------------------------
# The typed sections
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Corpus:
    """Sizes of the synthetic corpora (emorec.data.synthetic): ``sewa`` and ``rafdb`` are the keyword
    arguments of :class:`~emorec.data.synthetic.SewaSize` and :class:`~emorec.data.synthetic.RafSize`."""

    sewa: dict
    rafdb: dict


@dataclass(frozen=True)
class Table1:
    """Table 1 (§4.3): ``rows`` of (backbone, pre-training source, first fine-tuned block), trained
    with the settings below; ``pretrain`` holds lr/epochs/patience of the identity stand-in's
    pre-training. ``train_missing``: the chapter trains rows not in the artefact store."""

    rows: list
    width: float
    input_size: list
    pool_size: list
    lr: float
    batch_size: int
    epochs: int
    patience: int
    val_fraction: float
    pretrain: dict
    train_missing: bool = True


@dataclass(frozen=True)
class Table2:
    """Table 2 (§4.4): the CNN-LSTM grid inits × fps × SL × OR × FM and its training settings."""

    backbone_mode: str
    backbone_2d: str
    input_size: list
    pool: list
    hidden_size: int
    dropout: float
    recurrent_dropout: float
    head_units: list
    lr: float
    batch_size: int
    epochs: int
    patience: int
    inits: list
    fps_values: list
    seq_lens: list
    overlaps: list
    fusions: list
    trainable_from: str | None  # CPU profiles: the first trained stage on the shared prefix ("conv5")
    n_seeds: int  # the chosen configuration is trained with this many seeds
    train_missing: bool = True

    def base(self, seed: int) -> dict:
        """The settings every Table 2 configuration shares (the keys ``run_cnn_lstm`` reads)."""
        return dict(backbone=self.backbone_mode, trainable_from=self.trainable_from, input_size=self.input_size,
                    pool=self.pool,
                    hidden_size=self.hidden_size, dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
                    head_units=self.head_units, lr=self.lr, batch_size=self.batch_size, epochs=self.epochs,
                    patience=self.patience, seed=seed)


@dataclass(frozen=True)
class I3D:
    """The i3D grid (§4.5, Tables 3-6): ``pairs`` of (backbone, weight source), each with Table 3's
    C1 and C2, or with every option combination when ``full_options``; ``settings`` are the keys every
    row shares (width, input size, SL, OR, fps, batch, lr, epochs, ...); ``trainable_from`` the first
    trained stage on the shared prefix (CPU profiles; None: end to end, the paper)."""

    pairs: list
    full_options: bool
    settings: dict
    trainable_from: str | None
    n_seeds: int
    train_missing: bool = True


KEEP_WEIGHTS = ("all", "chosen")


@dataclass(frozen=True)
class Run:
    """``emorec run``: the plan's assumed throughputs (training frames/s per model kind, MTCNN frames/s),
    used where no measurement of this device exists (labelled ASSUMED in the plan), and ``keep_weights``:
    ``all`` keeps every finished configuration's weights; ``chosen`` deletes, once a grid has finished,
    those no later step reads (:func:`emorec.run.prune_weights`); ``decode_workers``: 1, a faces job
    decodes the next frames in a worker thread while MTCNN runs, 0 inline (:mod:`emorec.data.prefetch`)."""

    assumed_frames_per_s: dict = field(default_factory=dict)
    assumed_mtcnn_frames_per_s: float = 200.0
    keep_weights: str = "all"
    decode_workers: int = 1

    def __post_init__(self):
        from .data.prefetch import check_workers

        if self.keep_weights not in KEEP_WEIGHTS:
            raise ValueError(f"run: keep_weights must be one of {', '.join(KEEP_WEIGHTS)}, got {self.keep_weights!r}")
        check_workers(self.decode_workers)


#: ``common`` keys read by the book runner and the library rather than a chapter (emorec.book.RUNNER_KEYS).
RUNNER_KEYS = ("cell_timeout", "vggface_weights", "torch_home")

SECTIONS: dict[str, type] = {"corpus": Corpus, "04_3_finetuning": Table1, "04_4_cnn_lstm": Table2,
                             "04_5_i3d": I3D, "run": Run}
#: Sections that are not chapters (a ``--params`` file may name them too).
OWN_SECTIONS = ("corpus", "run")


def section_fields(section: str) -> set[str]:
    """The keys a typed section accepts (empty for other sections)."""
    kind = SECTIONS.get(section)
    return {f.name for f in dataclasses.fields(kind)} if kind else set()


@dataclass(frozen=True)
class Config:
    """Everything one profile (plus an optional ``--params`` file) configures."""

    profile: str
    common: dict
    corpus: Corpus
    table1: Table1
    table2: Table2
    i3d: I3D
    run: Run
    values: dict  # every section, merged, as plain values
    sources: dict  # (section, key) -> the file the value came from

    def chapter_values(self, stem: str) -> dict:
        """The plain values a chapter runs with: ``common`` overridden by the chapter's section."""
        return {**self.common, **(self.values.get(stem) or {})}

    @property
    def seed(self) -> int:
        return int(self.common.get("seed", 0))

    @property
    def data_root(self) -> str:
        return str(self.common.get("data_root", "data"))

    @property
    def artefact_root(self) -> str:
        return str(self.common.get("artefact_root", "artefacts"))


# --------------------------------------------------------------------------------------------------
# Reading and merging files
# --------------------------------------------------------------------------------------------------

def read_sections(path: Path) -> dict:
    """A parameter file: a mapping of sections (``common``, a chapter stem, ``corpus``, ``run``) to
    mappings of ``key: value`` lines (ours)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameters file")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"{path}: expected sections ('common:' or a chapter stem) each holding 'key: value' lines")
    return params


def profile_file(profile: str, root: Path | None = None) -> Path:
    """``params/<profile>.yaml`` of the repository (``root``: found from the working directory)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return (root or project_root()) / "params" / f"{profile}.yaml"


def check_typed_keys(params: dict, source: str) -> None:
    """Reject a key that a typed section (:data:`SECTIONS`) does not know, naming ``source``."""
    for section, part in params.items():
        allowed = section_fields(section)
        for key in part:
            if allowed and key not in allowed:
                raise ConfigError(f"{source}: unknown key {key!r} in section {section!r} "
                                  f"(known: {', '.join(sorted(allowed))})")


def check_common_keys(base: dict, override: dict, source: str) -> None:
    """Reject a ``common`` key of ``override`` that neither the profile (``base``: its ``common`` or a
    chapter's section) nor the runner (:data:`RUNNER_KEYS`) knows, naming ``source`` (the book's rule
    without reading the chapters: a key no chapter declares is an error there too)."""
    known = set(RUNNER_KEYS).union(*(part for part in base.values()))
    for key in override.get("common") or {}:
        if key not in known:
            raise ConfigError(f"{source}: unknown key {key!r} in section 'common' (not in the profile's "
                              f"parameters, nor one of {', '.join(RUNNER_KEYS)})")


def merge(base: dict, override: dict, base_source: str, source: str) -> tuple[dict, dict]:
    """``override``'s sections merged key by key over ``base``'s: (values, sources), where sources maps
    (section, key) to the file each value came from."""
    values, sources = {}, {}
    for section in dict.fromkeys([*base, *override]):
        values[section] = {**(base.get(section) or {}), **override.get(section, {})}
        for key in values[section]:
            sources[section, key] = source if key in override.get(section, {}) else base_source
    return values, sources


def _typed(kind: type, section: str, part: dict, sources: dict):
    names = {f.name for f in dataclasses.fields(kind)}
    required = [f.name for f in dataclasses.fields(kind)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in part]
    where = sorted({sources.get((section, k), "") for k in part} - {""}) or ["the parameter files"]
    if missing:
        raise ConfigError(f"{', '.join(where)}: section {section!r} lacks {missing}")
    try:
        return kind(**{k: v for k, v in part.items() if k in names})
    except ValueError as err:  # a value the section's dataclass refuses
        raise ConfigError(f"{', '.join(where)}: {err}") from None


def check_present(values: dict, sources: dict) -> None:
    """Build each typed section present in ``values`` (raising :class:`ConfigError` for a missing key);
    the book runner's check before any chapter runs (a book may have no typed section at all)."""
    for section, kind in SECTIONS.items():
        if section in values:
            _typed(kind, section, values[section] or {}, sources)


def load(profile: str, params_file: str | Path | None = None, root: Path | None = None) -> Config:
    """The typed configuration of ``profile``: ``params/<profile>.yaml`` with ``params_file`` merged
    over it (ours). Unknown keys of the typed sections, and missing ones, raise :class:`ConfigError`
    naming the file."""
    path = profile_file(profile, root)
    base = read_sections(path)
    base_source = f"params/{profile}.yaml"
    check_typed_keys(base, base_source)
    override = {}
    if params_file is not None:
        override = read_sections(Path(params_file))
        check_typed_keys(override, str(params_file))
        if "profile" in (override.get("common") or {}):
            raise ConfigError(f"{params_file}: common: 'profile' cannot be set here; use --profile")
        check_common_keys(base, override, str(params_file))
    values, sources = merge(base, override, base_source, str(params_file or ""))
    if not isinstance(values.get("common"), dict):
        raise ConfigError(f"{path}: needs a 'common:' section")
    typed: dict[str, Any] = {}
    for section, kind in SECTIONS.items():
        typed[section] = _typed(kind, section, values.get(section) or {}, sources)
    return Config(profile=profile, common=values["common"], corpus=typed["corpus"], table1=typed["04_3_finetuning"],
                  table2=typed["04_4_cnn_lstm"], i3d=typed["04_5_i3d"], run=typed["run"], values=values,
                  sources=sources)


__all__ = ["Config", "ConfigError", "Corpus", "I3D", "PROFILES", "Run", "SECTIONS", "Table1", "Table2",
           "check_common_keys", "check_present", "check_typed_keys", "load", "merge", "profile_file", "read_sections", "section_fields"]
