"""`explorer learn`: trains into models/NAME of the bundle (written beside and renamed in),
never reads fold 0, replaces only its own earlier model with --force, and says what is
wrong in one line."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.cli import main
from explorer.core.bundle import Bundle
from explorer.core.engine import Engine
from explorer.core.pair_features import pair_features
from explorer.core.pair_model import load_model


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["learn", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_learn_writes_a_model_the_bundle_loads(bundle_copy, capsys):
    code, out, err = run(capsys, bundle_copy, "--train", "fold2,fold3", "--rounds", "50")
    assert code == 0, err
    folder = bundle_copy / "models" / "pairs"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.txt"]
    assert [p.name for p in (bundle_copy / "models").iterdir()] == ["pairs"]  # no leftovers
    assert str(folder) in out and "select fold1" in out
    bundle = Bundle.open(bundle_copy)  # the bundle still opens and checks
    f = pair_features(Engine(bundle, "fold4"))
    model = load_model(folder, bundle.manifest.dataset["sha256"], f.names)
    p = model.probabilities(f)
    assert p.shape == (len(f.rows),) and np.isfinite(p).all()
    assert model.train_scopes == ("fold2", "fold3") and model.select_scope == "fold1"


def test_fold0_a_bad_name_and_unknown_scopes_are_one_line(bundle_copy, capsys):
    for argv, want in ((("--train", "fold0,fold2"), "fold0 is the test fold"),
                       (("--select", "fold0"), "fold0 is the test fold"),
                       (("--select", "fold2"), "also a train scope"),
                       (("--name", "../x"), "--name"),
                       (("--rounds", "0"), "--rounds"),
                       (("--train", "fold9"), "scope 'fold9' is not in this bundle")):
        code, _, err = run(capsys, bundle_copy, *argv)
        assert code == 2 and want in err and len(err.strip().splitlines()) == 1, err
    assert not (bundle_copy / "models").exists() or not any((bundle_copy / "models").iterdir())


def test_an_existing_model_is_replaced_only_with_force_and_only_if_ours(bundle_copy, capsys):
    assert run(capsys, bundle_copy, "--rounds", "20", "--train", "fold2")[0] == 0
    code, _, err = run(capsys, bundle_copy, "--rounds", "20", "--train", "fold2")
    assert code == 2 and "give --force" in err
    first = (bundle_copy / "models" / "pairs" / "model.json").read_text()
    code, _, err = run(capsys, bundle_copy, "--rounds", "20", "--train", "fold3", "--force")
    assert code == 0, err
    assert (bundle_copy / "models" / "pairs" / "model.json").read_text() != first
    (bundle_copy / "models" / "pairs" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, bundle_copy, "--rounds", "20", "--train", "fold2", "--force")
    assert code == 2 and "did not write" in err
    assert (bundle_copy / "models" / "pairs" / "notes.txt").read_text() == "mine"


def test_a_bundle_without_labels_is_one_line(capsys, tmp_path):
    from conftest import synthetic_table

    from precompute.build import BuildOptions, build

    csv = tmp_path / "u.csv"
    synthetic_table(n_groups=10).drop(columns="label_group").to_csv(csv, index=False)
    copy = build(BuildOptions(csv=csv, out=tmp_path / "u.bundle", k=6, progress=False))
    code, _, err = run(capsys, copy)
    assert code == 2 and "learning needs labels" in err
    assert not (copy / "models" / "pairs").exists()


@pytest.mark.parametrize("bad", ["file", "link"])
def test_a_models_path_that_is_not_a_folder_is_refused(bundle_copy, capsys, tmp_path, bad):
    if bad == "file":
        (bundle_copy / "models").write_text("x")
    else:
        (bundle_copy / "models").symlink_to(tmp_path)
    code, _, err = run(capsys, bundle_copy, "--rounds", "5")
    assert code == 2 and "not a folder" in err


def test_the_learned_mode_evaluates_the_models_probabilities(bundle_copy, capsys):
    """`explorer evaluate --mode learned[:NAME]`: the model's probability of each candidate
    pair thresholded like a similarity (Min2 and the unit filter as for any mode)."""
    import json

    from explorer.core.config import MatchConfig, parse_mode

    assert run(capsys, bundle_copy, "--rounds", "40")[0] == 0
    assert parse_mode("learned") == ("learned", ("learned:pairs",), None)
    code = main(["evaluate", str(bundle_copy), "--scope", "fold0", "--mode", "learned",
                 "--threshold", "0.4", "--min2", "0.3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["config"]["mode"] == "learned:pairs"
    bundle = Bundle.open(bundle_copy)
    engine = Engine(bundle, "fold0")
    f = pair_features(engine)
    prob = load_model(bundle_copy / "models" / "pairs", bundle.manifest.dataset["sha256"],
                      f.names).probabilities(f)
    cfg = MatchConfig("learned", ("learned:pairs",), (0.4,), min2=(0.3,))
    ev = engine.evaluate(cfg)
    np.testing.assert_array_equal(ev.stage.score[f.rows, f.cols], prob)
    assert (ev.pred[f.rows, f.cols] >= (prob >= np.float32(0.4))).all()  # Min2 only adds
    assert out["metrics"]["f1"] == pytest.approx(ev.metrics.f1, abs=1e-9)


def test_the_first_learned_view_stops_at_yield_points_and_scores_in_blocks(
        bundle_copy, capsys, monkeypatch):
    """The learned scores are computed between yield points (the app abandons a superseded
    first view there, nothing cached), and in blocks of pairs with the same result."""
    from explorer.core import pair_model
    from explorer.core.config import MatchConfig

    assert run(capsys, bundle_copy, "--rounds", "20")[0] == 0
    cfg = MatchConfig("learned", ("learned:pairs",), (0.5,))
    want = Engine(Bundle.open(bundle_copy), "fold0").evaluate(cfg).stage.score
    monkeypatch.setattr(pair_model, "PREDICT_PAIRS", 7)
    engine = Engine(Bundle.open(bundle_copy), "fold0")
    calls = []

    class Superseded(Exception):
        pass

    def hook() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise Superseded

    engine.checkpoint = hook
    with pytest.raises(Superseded):
        engine.evaluate(cfg)
    assert "learned:pairs" not in engine._derived  # nothing half-computed kept
    calls.clear()
    engine.checkpoint = lambda: calls.append(1)
    np.testing.assert_array_equal(engine.evaluate(cfg).stage.score, want)
    n_pairs = int((engine.graph.cand[:, 1:] >= 0).sum())
    # one after loading, one per modality, one per block of 7 pairs
    assert len(calls) == 1 + len(engine.modalities) + -(-n_pairs // 7)


def test_learn_blend_stores_thresholds_and_the_mode_reads_the_feature(bundle_copy, capsys):
    import json

    from explorer.core.config import MatchConfig
    from explorer.core.pair_features import with_blended
    from explorer.core.pair_reasons import pair_reasons

    assert run(capsys, bundle_copy, "--rounds", "30", "--blend", "--name", "b")[0] == 0
    meta = json.loads((bundle_copy / "models" / "b" / "model.json").read_text())
    assert set(meta["blend"]) == {"tfidf", "phash"}
    assert all(-1 <= t <= 1 for t in meta["blend"].values())
    bundle = Bundle.open(bundle_copy)
    engine = Engine(bundle, "fold0")
    f = with_blended(engine, pair_features(engine), meta["blend"])
    prob = load_model(bundle_copy / "models" / "b", bundle.manifest.dataset["sha256"],
                      f.names).probabilities(f)
    ev = engine.evaluate(MatchConfig("learned", ("learned:b",), (0.5,)))
    np.testing.assert_array_equal(ev.stage.score[f.rows, f.cols], prob)
    q = int(f.rows[0])
    why = pair_reasons(engine, "b", q)
    c = int(engine.graph.cand[q, f.cols[0]])
    assert why[c].probability == pytest.approx(float(prob[0]), abs=1e-5)
    words = {r.feature: r.words for r in why[c].reasons}
    assert "after one INB blend" in words["tfidf.blend_sim"]


def test_the_learned_mode_without_a_model_is_one_line(bundle_copy, capsys):
    code = main(["evaluate", str(bundle_copy), "--scope", "fold0", "--mode", "learned:x",
                 "--threshold", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and "no model 'x' in this bundle" in err and "explorer learn" in err
    assert len(err.strip().splitlines()) == 1


def test_best_also_tries_the_bundles_models(bundle_copy, capsys):
    from explorer.core.pair_model import bundle_models, learned_modalities
    from explorer.core.tune import best, candidate_modes

    bundle = Bundle.open(bundle_copy)
    assert bundle_models(bundle) == [] and learned_modalities(bundle) == []
    assert run(capsys, bundle_copy, "--rounds", "40")[0] == 0
    (bundle_copy / "models" / ".half.x").mkdir()  # a model being written: not listed
    (bundle_copy / "models" / "broken").mkdir()   # no files: not listed
    assert bundle_models(bundle) == ["pairs"]
    names = learned_modalities(bundle)
    assert names == ["learned:pairs"]
    cands = candidate_modes(["tfidf", "phash"], names)
    assert cands[-1].mode == "learned" and cands[-1].modalities == ("learned:pairs",)
    assert cands[:-1] == candidate_modes(["tfidf", "phash"])  # the rest as without models
    results = best(Engine(bundle, "fold1"), ["tfidf", "phash"], max_inb=0, derived=names)
    assert any(r.config.mode == "learned" for r in results)


def test_the_apps_best_search_tries_the_bundles_models(bundle_copy, capsys, monkeypatch):
    """The app lists the learned mode, so its Best search (Session.best) tries the
    bundle's models as `explorer evaluate --best` does."""
    from explorer.core import session as session_module

    assert run(capsys, bundle_copy, "--rounds", "40")[0] == 0
    searched: list[tuple] = []
    real = session_module.best

    def spy(engine, mods, **kw):
        searched.append(tuple(kw.get("derived", ())))
        return real(engine, mods, **kw)

    monkeypatch.setattr(session_module, "best", spy)
    session = session_module.Session(Bundle.open(bundle_copy))
    assert session.derived == ["learned:pairs"]
    session.best("fold1")
    assert searched == [("learned:pairs",)]


def test_the_app_lists_and_shows_the_learned_mode(bundle_copy, capsys, qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QComboBox, QSpinBox

    from explorer.core.config import MatchConfig
    from explorer.core.session import Session
    from explorer.gui.app import app_context
    from explorer.gui.main_window import MainWindow
    from explorer.gui.settings import AppSettings

    assert run(capsys, bundle_copy, "--rounds", "40")[0] == 0
    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    w = MainWindow(Session(Bundle.open(bundle_copy)), bundle_copy, app_context(settings))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.viewApplied, timeout=60_000):
        w.show()
    combo = w.controls.findChild(QComboBox, "modeCombo")
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts[-1] == "learned:pairs (classifier)"
    with qtbot.waitSignal(w.viewApplied, timeout=60_000):
        combo.setCurrentIndex(len(texts) - 1)
    cfg = w.config
    assert cfg.mode == "learned" and cfg.modalities == ("learned:pairs",)
    engine = Engine(Bundle.open(bundle_copy), w.scope)
    want = engine.evaluate(MatchConfig("learned", ("learned:pairs",), cfg.thresholds,
                                       min2=cfg.min2))
    assert w.view.snapshot.metrics.f1 == pytest.approx(want.metrics.f1, abs=1e-9)
    # INB blends over the classifier's predicted neighbours, as the core computes it
    spin = w.controls.findChild(QSpinBox, "inbIterations")
    assert spin.isEnabled()
    with qtbot.waitSignal(w.viewApplied, timeout=60_000):
        spin.setValue(1)
    cfg = w.config
    assert len(cfg.inb) == 1
    want = engine.evaluate(cfg)
    assert w.view.snapshot.metrics.f1 == pytest.approx(want.metrics.f1, abs=1e-9)
    w.worker.stop()


def test_a_file_added_while_training_is_never_deleted(bundle_copy, capsys, monkeypatch):
    """The model folder is checked again just before the swap: a file that appears there
    during training makes --force refuse, and the file stays."""
    from explorer import learn as learn_module

    assert run(capsys, bundle_copy, "--rounds", "20", "--train", "fold2")[0] == 0
    folder = bundle_copy / "models" / "pairs"
    real = learn_module.train_model

    def train_then_meddle(*a, **k):
        model = real(*a, **k)
        (folder / "notes.txt").write_text("mine")
        return model

    monkeypatch.setattr(learn_module, "train_model", train_then_meddle)
    code, _, err = run(capsys, bundle_copy, "--rounds", "20", "--train", "fold3", "--force")
    assert code == 2 and "did not write" in err
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.txt", "notes.txt"]
    assert [p.name for p in (bundle_copy / "models").iterdir()] == ["pairs"]  # no leftovers
