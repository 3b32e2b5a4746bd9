"""Reader of RAF-DB's basic-emotion labels (§4.1) and of the RAF-like set's identity list (ours).

RAF-DB basic layout: ``Image/aligned/<stem>_aligned.jpg`` (100x100 aligned faces) and
``EmoLabel/list_patition_label.txt`` (sic) with lines ``train_00001.jpg 5``; labels 1..7 are
Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral; 12,271 train and 3,068 test images.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emorec.data import _text

EMOTIONS = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"


def read_labels(root, check_images: bool = False) -> pd.DataFrame:
    """RAF-DB basic labels: columns ``image, split ("train"/"test"), label (0..6), emotion, path`` (§4.1).

    ``label`` is the file's 1..7 minus one (RAF-DB order: Surprise ... Neutral); ``path`` is the
    aligned image ``Image/aligned/<stem>_aligned.jpg``. With ``check_images`` every image must exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: RAF-DB directory not found")
    path = root / LABEL_FILE
    rows, seen = [], set()
    for k, line in _text.read_lines(path):
        fields = [_text.split_fields(f, ",")[0] for f in line.split()]
        if len(fields) != 2:
            raise ValueError(f"{path}: line {k}: expected '<image> <label>', got {line!r}")
        image, label = fields
        split = image.split("_", 1)[0].lower()
        if split not in ("train", "test"):
            raise ValueError(f"{path}: line {k}: image {image!r} does not start with train_ or test_")
        if not label.isdigit() or not 1 <= int(label) <= 7:
            raise ValueError(f"{path}: line {k}: label {label!r} is not in 1..7")
        if image in seen:
            raise ValueError(f"{path}: line {k}: image {image!r} listed twice")
        seen.add(image)
        aligned = root / "Image" / "aligned" / f"{Path(image).stem}_aligned.jpg"
        if check_images and not aligned.exists():
            raise FileNotFoundError(f"{aligned}: aligned image listed in {path} not found")
        rows.append((image, split, int(label) - 1, EMOTIONS[int(label) - 1], str(aligned)))
    return pd.DataFrame(rows, columns=["image", "split", "label", "emotion", "path"])


def read_identities(root) -> pd.DataFrame:
    """The RAF-like set's identity of each image (ours; RAF-DB has none): columns ``image, identity, group``.

    Used for an identity-classification pre-training stand-in (VGG-Face's task, §3.1).
    """
    path = Path(root) / "identities.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: identity list not found (only the synthetic RAF-like set has one)")
    df = pd.read_csv(path)
    if not {"image", "identity", "group"} <= set(df.columns):
        raise ValueError(f"{path}: expected columns image, identity, group; found {list(df.columns)}")
    return df
