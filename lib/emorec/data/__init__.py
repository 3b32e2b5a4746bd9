"""Data: the synthetic corpora, readers of the real datasets' formats, video decoding, faces, clips (§3.2, §4.1)."""
