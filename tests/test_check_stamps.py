"""Check stamps (explorer/core/bundle/stamps.py): a part checked once is not checked
again for the very same files, and any change to a file of the bundle checks it again."""

from __future__ import annotations

import os

import numpy as np
import pytest

from explorer.core.bundle import Bundle, BundleError
from explorer.core.bundle import loader as L


@pytest.fixture
def stamps(tmp_path, monkeypatch):
    folder = tmp_path / "stamps"
    monkeypatch.setenv("EXPLORER_CHECK_STAMPS", str(folder))
    return folder


@pytest.fixture
def scope_checks(monkeypatch):
    """The scopes whose arrays were checked (the real check runs)."""
    seen: list[str] = []
    real = L.Bundle._check_scope

    def spy(self, scope):
        seen.append(scope)
        return real(self, scope)

    monkeypatch.setattr(L.Bundle, "_check_scope", spy)
    return seen


def test_a_checked_scope_is_not_checked_again(bundle_copy, stamps, scope_checks):
    path = bundle_copy
    Bundle.open(path, lazy=True).knn("all", "tfidf")
    Bundle.open(path, lazy=True).knn("all", "tfidf")
    assert scope_checks == ["all"]
    Bundle.open(path, lazy=True).knn("fold0", "tfidf")  # another part: checked
    assert scope_checks == ["all", "fold0"]
    assert len(list(stamps.iterdir())) == 2


def test_a_changed_file_is_checked_again_and_refused(bundle_copy, stamps, scope_checks):
    path = bundle_copy
    b = Bundle.open(path, lazy=True)
    rel = b.manifest.modality("tfidf").files["knn"]["all"]["sim"]
    b.knn("all", "tfidf")
    sim = np.load(path / rel)
    sim[3, 1] = 7.0  # out of range: a wrong number if the stamp were trusted
    st = os.stat(path / rel)
    np.save(path / rel, sim)
    os.utime(path / rel, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with mtime put back
    with pytest.raises(BundleError, match="sim"):
        Bundle.open(path, lazy=True).knn("all", "tfidf")
    assert scope_checks == ["all", "all"]


def test_stamps_off_or_unwritable_check_every_time(bundle_copy, tmp_path, monkeypatch,
                                                   scope_checks):
    path = bundle_copy
    monkeypatch.setenv("EXPLORER_CHECK_STAMPS", "off")
    Bundle.open(path, lazy=True).knn("all", "tfidf")
    Bundle.open(path, lazy=True).knn("all", "tfidf")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("EXPLORER_CHECK_STAMPS", str(blocker / "stamps"))  # under a file
    Bundle.open(path, lazy=True).knn("all", "tfidf")
    Bundle.open(path, lazy=True).knn("all", "tfidf")
    assert scope_checks == ["all"] * 4


def test_full_validation_uses_the_same_stamps(bundle_copy, stamps, scope_checks):
    path = bundle_copy
    Bundle.open(path)  # evaluate's full check
    n = len(scope_checks)
    assert n == len(Bundle.open(path, lazy=True).manifest.scopes)
    Bundle.open(path)
    Bundle.open(path, lazy=True).knn("fold3", "phash")
    assert len(scope_checks) == n
