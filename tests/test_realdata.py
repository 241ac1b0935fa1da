"""Real-data check on a slice of the shared Shopee table (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine
from explorer.core.tune import tune
from precompute.build import BuildOptions, build

pytestmark = pytest.mark.realdata
GROUPS = 1500


@pytest.fixture(scope="module")
def real_slice(real_csv, tmp_path_factory):
    """Every posting of the first GROUPS label groups (in file order), so the slice keeps
    the real group-size distribution, title noise and near-duplicate phashes."""
    df = pd.read_csv(real_csv)
    keep = df["label_group"].drop_duplicates().iloc[:GROUPS]
    part = df[df["label_group"].isin(keep)]
    root = tmp_path_factory.mktemp("real")
    part.to_csv(root / "slice.csv", index=False)
    return build(BuildOptions(csv=root / "slice.csv", out=root / "slice.bundle",
                              progress=False)), part


def test_real_slice_builds_with_the_studys_split(real_slice):
    path, part = real_slice
    b = Bundle.open(path)
    assert b.n_items == len(part)
    folds = b.items["fold"].to_numpy()
    sizes = np.bincount(folds, minlength=5)
    assert sizes.min() > 0.18 * len(part) and sizes.max() < 0.22 * len(part)
    assert (b.items.groupby("label_group")["fold"].nunique() == 1).all()
    # the phash signal: postings sharing an image hash are each other's top neighbours
    _, sim = b.knn("fold0", "phash")
    assert np.all(sim[:, 0] == 1.0) and np.all(np.diff(sim[:, 1:], axis=1) <= 0)


def test_real_slice_tfidf_tuned_on_fold1_is_in_the_studys_range(real_slice):
    path, _ = real_slice
    b = Bundle.open(path)
    cfg = tune(Engine(b, "fold1"), MatchConfig("single", ("tfidf",), (0.5,)))
    f1 = Engine(b, "fold0").evaluate(cfg).metrics.f1
    with_min2 = tune(Engine(b, "fold1"), cfg.replace(min2=(0.3,)))
    f1_min2 = Engine(b, "fold0").evaluate(with_min2).metrics.f1
    # a 1,500-group slice has fewer distractors per fold than the full table (0.777)
    assert 0.75 < f1 < 0.95
    assert 0.15 < cfg.thresholds[0] < 0.7
    assert f1_min2 > f1 - 0.005
