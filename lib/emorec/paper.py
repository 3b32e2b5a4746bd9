"""The paper's reported numbers as data (Teixeira, Granger & Koerich 2021, Tables 1-7), for side-by-side tables.

Each ``tableN()`` returns a fresh :class:`pandas.DataFrame` transcribed from the paper's text;
"NA" cells are missing values (``NaN``; test them with ``pd.isna``). Columns use short snake-case names; the
chapters rename them for display. ``citation`` columns hold keys of ``references.bib``.

Also here: :data:`CIRCUMPLEX_WORDS`, emotion words with their angles on Russell's (1980)
circumplex, used to draw Figure 1 (§1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "table1",
    "table2",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "I3D_CONFIGS",
    "CIRCUMPLEX_WORDS",
    "CIRCUMPLEX_OCTANTS",
    "circumplex_coordinates",
]

NA = np.nan

# Table 1 (§4.3): fine-tuning on RAF-DB. (reference, model, pre-training, first fine-tuned block, accuracy %); None = NA
_TABLE1 = [
    ("Proposed", "VGG-11", "ImageNet", "Full", 75.6, "teixeira2021"),
    ("Proposed", "VGG-11", "ImageNet", "Conv_2_1", 75.9, "teixeira2021"),
    ("Proposed", "VGG-11", "ImageNet", "Conv_3_1", 75.9, "teixeira2021"),
    ("Proposed", "VGG-11", "ImageNet", "Conv_4_1", 75.9, "teixeira2021"),
    ("Proposed", "VGG-11", "ImageNet", "Conv_5_1", 70.3, "teixeira2021"),
    ("Proposed", "VGG-11-BN", "ImageNet", "Full", 77.8, "teixeira2021"),
    ("Proposed", "VGG-16", "VGG-Face", "Full", 78.5, "teixeira2021"),
    ("Proposed", "VGG-16", "VGG-Face", "Conv_2_1", 78.5, "teixeira2021"),
    ("Proposed", "VGG-16", "VGG-Face", "Conv_3_1", 79.1, "teixeira2021"),
    ("Proposed", "VGG-16", "VGG-Face", "Conv_4_1", 79.9, "teixeira2021"),
    ("Proposed", "VGG-16", "VGG-Face", "Conv_5_1", 74.4, "teixeira2021"),
    ("Proposed", "VGG-16-BN", "VGG-Face", "Full", 78.4, "teixeira2021"),
    ("Jyoti et al. (2019)", "RCNN", None, None, 76.5, "jyoti2019"),
    ("Jyoti et al. (2019)", "CNN", None, None, 78.2, "jyoti2019"),
    ("Li et al. (2019)", "ACNN", "ImageNet", None, 85.1, "li2019acnn"),
    ("Wang et al. (2020)", "CNN+RAN", "MS-Celeb-1M", None, 86.9, "wang2020ran"),
]

# Table 2 (§4.4): VGG-16-LSTM on SEWA-DB. (init, fps, label, SL, OR, FM, PCC, CCC, MAPE %)
_TABLE2 = [
    ("VGG-Face", 10, "valence", 16, 0.2, "extremum", 0.590, 0.560, 3.8),
    ("VGG-Face", 10, "arousal", 16, 0.2, "mean", 0.549, 0.542, 8.7),
    ("VGG-Face", 50, "valence", 64, 0.2, "mean", 0.541, 0.511, 6.8),
    ("VGG-Face", 50, "arousal", 64, 0.2, "extremum", 0.495, 0.492, 3.4),
    ("RAF-DB", 10, "valence", 64, 0.8, "mean", 0.631, 0.625, 3.7),
    ("RAF-DB", 10, "arousal", 64, 0.8, "extremum", 0.558, 0.557, 9.4),
    ("RAF-DB", 50, "valence", 64, 0.2, "mean", 0.582, 0.568, 8.2),
    ("RAF-DB", 50, "arousal", 64, 0.2, "extremum", 0.517, 0.517, 4.4),
]

I3D_CONFIGS: dict[str, dict] = {
    "C1": {"mode": "centered", "init": "random", "mask_center": False, "dilation": (1, 1, 1, 1), "multiplier": 1},
    "C2": {"mode": "copied", "init": "zero", "mask_center": True, "dilation": (1, 2, 4, 8), "multiplier": 100},
}
"""Table 3 (§4.5) as keyword values: the two i3D configurations C1 and C2.

``mode``/``init``/``mask_center`` follow :func:`emorec.inflation.inflate`'s arguments; ``dilation``
is the temporal dilation of the four blocks of convolutions; ``multiplier`` scales the targets.
"""

# Tables 4 and 5 (§4.5): best i3D configuration per base model and initialisation.
# (base model, init, inflation, dilation, masking, centred-weights init, multiplier)
# Dilation "I" / "VIII" as printed; read as the C1 (1, 1, 1, 1) and C2 (1, 2, 4, 8) patterns of Table 3.
_TABLE4 = [
    ("VGG-11-BN", "RAF-DB", "centered", "I", False, "zero", 1),
    ("VGG-11-BN", "ImageNet", "copied", "I", False, "zero", 100),
    ("VGG-16", "VGG-Face", "centered", "I", False, "random", 1),
    ("VGG-16", "RAF-DB", "copied", "I", False, "random", 1),
    ("VGG-16", "ImageNet", "centered", "I", False, "random", 1),
    ("VGG-16-BN", "VGG-Face", "centered", "I", False, "random", 1),
    ("VGG-16-BN", "RAF-DB", "copied", "I", True, "random", 1),
    ("VGG-16-BN", "ImageNet", "copied", "I", False, "random", 1),
    ("ResNet50", "VGG-Face", "centered", "I", True, "zero", 100),
    ("ResNet50", "RAF-DB", "copied", "VIII", False, "zero", 1),
    ("ResNet50", "ImageNet", "centered", "VIII", True, "zero", 1),
]
_TABLE5 = [
    ("VGG-11-BN", "RAF-DB", "centered", "I", False, "random", 1),
    ("VGG-11-BN", "ImageNet", "centered", "VIII", False, "zero", 1),
    ("VGG-16", "VGG-Face", "centered", "I", False, "random", 1),
    ("VGG-16", "RAF-DB", "copied", "I", True, "random", 100),
    ("VGG-16", "ImageNet", "centered", "I", False, "random", 1),
    ("VGG-16-BN", "VGG-Face", "centered", "I", True, "random", 1),
    ("VGG-16-BN", "RAF-DB", "copied", "I", False, "random", 1),
    ("VGG-16-BN", "ImageNet", "centered", "I", False, "zero", 1),
    ("ResNet50", "VGG-Face", "copied", "I", True, "zero", 100),
    ("ResNet50", "RAF-DB", "centered", "VIII", True, "zero", 1),
    ("ResNet50", "ImageNet", "centered", "I", False, "zero", 1),
]

# Table 6 (§4.5): best i3D results. (base model, init, valence PCC, CCC, MAPE %, arousal PCC, CCC, MAPE %)
_TABLE6 = [
    ("VGG-11-BN", "RAF-DB", 0.035, 0.018, 2.9, 0.359, 0.348, 8.1),
    ("VGG-11-BN", "ImageNet", 0.040, 0.025, 4.2, 0.342, 0.203, 3.0),
    ("VGG-16", "VGG-Face", 0.119, 0.071, 3.0, 0.220, 0.166, 5.2),
    ("VGG-16", "RAF-DB", 0.036, 0.028, 3.5, 0.242, 0.119, 4.6),
    ("VGG-16", "ImageNet", 0.209, 0.190, 2.4, 0.391, 0.189, 3.8),
    ("VGG-16-BN", "VGG-Face", 0.203, 0.105, 3.6, 0.347, 0.304, 5.3),
    ("VGG-16-BN", "RAF-DB", 0.123, 0.101, 3.2, 0.284, 0.165, 3.3),
    ("VGG-16-BN", "ImageNet", 0.346, 0.304, 5.6, 0.382, 0.326, 5.3),
    ("ResNet50", "VGG-Face", 0.313, 0.253, 3.5, 0.406, 0.273, 4.9),
    ("ResNet50", "RAF-DB", 0.113, 0.063, 2.9, 0.262, 0.207, 4.9),
    ("ResNet50", "ImageNet", 0.183, 0.164, 6.0, 0.323, 0.256, 4.7),
]

# Table 7 (§5): comparison on SEWA-DB. (reference, model, valence PCC, CCC, arousal PCC, CCC, citation, note)
_THREE_CULTURES = "subset of SEWA-DB with three cultures (Hungarian, German, Chinese)"
_TABLE7 = [
    ("Proposed", "2D-CNN-LSTM", 0.631, 0.625, 0.558, 0.557, "teixeira2021", "VGG-16 fine-tuned with RAF-DB"),
    ("Proposed", "i3D-CNN", 0.346, 0.304, 0.382, 0.326, "teixeira2021", "inflated VGG-16-BN, initialized with ImageNet"),
    ("Kossaifi et al. (2019)", "SVR", 0.321, 0.312, 0.182, 0.202, "kossaifi2019sewa", None),
    ("Kossaifi et al. (2019)", "RF", 0.268, 0.207, 0.181, 0.123, "kossaifi2019sewa", None),
    ("Kossaifi et al. (2019)", "LSTM", 0.322, 0.281, 0.173, 0.115, "kossaifi2019sewa", None),
    ("Kossaifi et al. (2019)", "ResNet18 (RMSE)", 0.290, 0.270, 0.130, 0.110, "kossaifi2019sewa", None),
    ("Kossaifi et al. (2019)", "ResNet18 (CCC)", 0.350, 0.350, 0.350, 0.290, "kossaifi2019sewa", None),
    ("Chen et al. (2019)", "ST-GCN", NA, 0.540, NA, 0.581, "chen2019", _THREE_CULTURES),
    ("Zhao et al. (2019)", "DenseNet-style CNN", NA, 0.580, NA, 0.594, "zhao2019", _THREE_CULTURES),
]


def table1() -> pd.DataFrame:
    """Table 1 of §4.3: accuracy (%) on RAF-DB's test set after fine-tuning, with the cited baselines.

    ``block`` is the first convolution block fine-tuned ("Full": all layers); missing where the
    paper prints NA.
    """
    cols = ["reference", "model", "pretraining", "block", "accuracy", "citation"]
    return pd.DataFrame(_TABLE1, columns=cols)


def table2() -> pd.DataFrame:
    """Table 2 of §4.4: VGG-16-LSTM on SEWA-DB (PCC, CCC, MAPE %) per initialisation, fps and label.

    ``SL`` sequence length (frames), ``OR`` overlapping ratio, ``FM`` fusion mode.
    """
    cols = ["init", "fps", "label", "SL", "OR", "FM", "PCC", "CCC", "MAPE"]
    return pd.DataFrame(_TABLE2, columns=cols)


def table3() -> pd.DataFrame:
    """Table 3 of §4.5: hyperparameters of the i3D configurations C1 and C2, as printed (one row per parameter)."""
    rows = {
        "Inflation": ("Centered", "Copied"),
        "Weight initialization": ("Random", "Zero"),
        "Masking": ("No", "Yes"),
        "Dilation (blocks 1-4)": ("1, 1, 1, 1", "1, 2, 4, 8"),
        "Multiplier": ("×1", "×100"),
    }
    df = pd.DataFrame.from_dict(rows, orient="index", columns=["C1", "C2"])
    df.index.name = "parameter"
    return df


def _config_table(rows) -> pd.DataFrame:
    cols = ["base_model", "init", "inflation", "dilation", "masking", "centered_init", "multiplier"]
    return pd.DataFrame(rows, columns=cols)


def table4() -> pd.DataFrame:
    """Table 4 of §4.5: the i3D configuration giving the best valence result, per base model and initialisation.

    ``dilation`` is printed "I" or "VIII" (the C1 and C2 patterns of Table 3); ``centered_init``
    is how the non-centre slices were initialised; ``multiplier`` scales the targets.
    """
    return _config_table(_TABLE4)


def table5() -> pd.DataFrame:
    """Table 5 of §4.5: as :func:`table4`, for arousal."""
    return _config_table(_TABLE5)


def table6() -> pd.DataFrame:
    """Table 6 of §4.5: best i3D-CNN results (PCC, CCC, MAPE %) for valence and arousal."""
    cols = [
        "base_model", "init",
        "valence_PCC", "valence_CCC", "valence_MAPE",
        "arousal_PCC", "arousal_CCC", "arousal_MAPE",
    ]
    return pd.DataFrame(_TABLE6, columns=cols)


def table7() -> pd.DataFrame:
    """Table 7 of §5: comparison with the state of the art on SEWA-DB (``NaN`` where the paper prints NA).

    ``note`` carries the table's footnotes: which model "Proposed" means, and that Chen et al.
    and Zhao et al. report on a three-culture subset, so they are not directly comparable.
    """
    cols = ["reference", "model", "valence_PCC", "valence_CCC", "arousal_PCC", "arousal_CCC", "citation", "note"]
    return pd.DataFrame(_TABLE7, columns=cols)


CIRCUMPLEX_WORDS: dict[str, float] = {
    "happy": 7.8,
    "delighted": 24.9,
    "excited": 48.6,
    "astonished": 69.8,
    "aroused": 73.8,
    "tense": 92.8,
    "alarmed": 96.5,
    "miserable": 188.7,
    "sad": 207.5,
    "droopy": 256.6,
    "tired": 267.7,
    "sleepy": 271.9,
    "calm": 316.2,
    "serene": 328.6,
    "pleased": 353.2,
}
"""Emotion words and their angles (degrees, counter-clockwise from "pleasure" on the +valence axis).

Fifteen of the 28 adjectives placed by direct circular scaling in Russell (1980), "A circumplex
model of affect" (J. Pers. Soc. Psychol. 39(6), 1161-1178): 0° is pleasure, 90° arousal, 180°
displeasure (misery), 270° sleepiness. Only angles were scaled, so the words sit on the unit circle.
"""

CIRCUMPLEX_OCTANTS: dict[str, float] = {
    "pleasure": 0.0,
    "excitement": 45.0,
    "arousal": 90.0,
    "distress": 135.0,
    "misery": 180.0,
    "depression": 225.0,
    "sleepiness": 270.0,
    "contentment": 315.0,
}
"""Russell's (1980) eight hypothesised affect categories, at 45° steps around the circumplex."""


def circumplex_coordinates(words: dict[str, float] | None = None, radius: float = 1.0) -> pd.DataFrame:
    """Valence (x) and arousal (y) of circumplex words: ``radius * (cos θ, sin θ)`` (§1, Figure 1).

    ``words`` maps word → angle in degrees; defaults to :data:`CIRCUMPLEX_WORDS`.
    """
    words = CIRCUMPLEX_WORDS if words is None else words
    angle = np.array(list(words.values()), dtype=np.float64)
    rad = np.deg2rad(angle)
    return pd.DataFrame(
        {"word": list(words), "angle_deg": angle, "valence": radius * np.cos(rad), "arousal": radius * np.sin(rad)}
    )
