"""TF-IDF exactly as the study: binary, English stop words, at most 15,000 features,
L2-normalised rows, fitted on the rows of the scope it serves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from precompute.errors import InputError

PARAMS = {"binary": True, "stop_words": "english", "max_features": 15000}


def fit_transform(titles: Sequence[str], source: str = "") -> sparse.csr_matrix:
    """`source` names the file and scope in error messages."""
    vec = TfidfVectorizer(dtype=np.float32, **PARAMS)
    try:
        mat = vec.fit_transform(titles)
    except ValueError as exc:  # e.g. every title empty or made only of stop words
        where = f"{source}: " if source else ""
        raise InputError(f"{where}title: TF-IDF cannot be fitted ({exc})") from None
    mat = sparse.csr_matrix(mat, dtype=np.float32)
    mat.sort_indices()
    return mat
