"""Training (`precompute train`): margin layers against hand-computed logits, schedules,
the split and input checks, fold-1 selection against a brute-force metric, and the loop
(one step lowers the loss, resume continues the schedule, checkpoints that `precompute
build` loads give the same embeddings)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import WORDS, synthetic_table
from tiny_bert import write_tiny_bert

from explorer.core.bundle import Bundle
from precompute import text_encoders as te
from precompute.build import BuildOptions, build
from precompute.cli import main
from precompute.errors import InputError
from precompute.training import heads, loop, schedule
from precompute.training.data import load_split
from precompute.training.selection import tuned_f1
from precompute.training.text import bucketed, text_task

# ---- margin layers ---------------------------------------------------------------------


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def _layer(cls, angles: list[float], margin: float = 0.5, scale: float = 30.0):
    layer = cls(2, len(angles), scale=scale, margin=margin)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([_unit(a) for a in angles]) * 3.0)  # any norm
    return layer


def test_arcface_logits_by_hand():
    layer = _layer(heads.ArcFace, [0.0, 0.5, math.pi / 2])
    x = torch.tensor([_unit(0.3), _unit(0.3)]) * 7.0
    got = layer(x, torch.tensor([0, 2]))
    want = 30 * torch.tensor([[math.cos(0.3 + 0.5), math.cos(0.2), math.cos(math.pi / 2 - 0.3)],
                              [math.cos(0.3), math.cos(0.2),
                               math.cos(math.pi / 2 - 0.3 + 0.5)]])
    assert torch.allclose(got, want.float(), atol=1e-4)


def test_arcface_past_pi_minus_m_uses_the_linear_fallback():
    layer = _layer(heads.ArcFace, [0.0, 1.0])
    got = layer(torch.tensor([_unit(3.0)]), torch.tensor([0]))
    # theta = 3.0 > pi - 0.5: cos(theta) - m sin(m) keeps the logit decreasing in theta
    want = 30 * (math.cos(3.0) - 0.5 * math.sin(0.5))
    assert got[0, 0].item() == pytest.approx(want, abs=1e-4)
    assert got[0, 1].item() == pytest.approx(30 * math.cos(2.0), abs=1e-4)


def test_curricularface_logits_by_hand():
    layer = _layer(heads.CurricularFace, [0.0, 0.5, math.pi / 2])
    x, y = torch.tensor([_unit(0.3)]), torch.tensor([0])
    cos_y, cos_ym = math.cos(0.3), math.cos(0.8)
    hard, easy = math.cos(0.2), math.cos(math.pi / 2 - 0.3)
    assert hard > cos_ym > easy  # class 1 is a hard negative, class 2 is not
    layer.eval()
    with torch.no_grad():
        layer.t.fill_(0.2)
    got = layer(x, y)
    want = 30 * torch.tensor([[cos_ym, hard * (0.2 + hard), easy]])
    assert torch.allclose(got, want.float(), atol=1e-4)
    assert layer.t.item() == pytest.approx(0.2)  # eval: t is not updated
    layer.train()
    got = layer(x, y)
    t = 0.99 * 0.2 + 0.01 * cos_y  # training: t moves towards the mean target cosine first
    assert layer.t.item() == pytest.approx(t, abs=1e-6)
    want = 30 * torch.tensor([[cos_ym, hard * (t + hard), easy]])
    assert torch.allclose(got, want.float(), atol=1e-4)


def test_margin_layer_names():
    assert isinstance(heads.margin_layer("curricular", 4, 3, 30, 0.5), heads.CurricularFace)
    with pytest.raises(ValueError, match="unknown loss"):
        heads.margin_layer("cosface", 4, 3, 30, 0.5)


# ---- schedules -------------------------------------------------------------------------


def test_lr_warms_up_then_decays_to_the_floor():
    f = [schedule.lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert f[55] == pytest.approx(0.01 + 0.99 * 0.5, abs=1e-9)  # half way down the cosine
    assert schedule.lr_factor(100, 100, 10) == pytest.approx(0.01)


def test_margin_ramp():
    got = [schedule.margin_at(e, 0.5, 0.2, 3) for e in range(5)]
    assert got == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.5])
    assert schedule.margin_at(0, 0.5, None, 3) == 0.5


def test_bucketed_batches_cover_every_row_once():
    lengths = np.random.default_rng(0).integers(1, 80, 203)
    batches = list(bucketed(lengths, 10, np.random.default_rng(1), pool=4))
    assert sorted(np.concatenate(batches).tolist()) == list(range(203))
    assert all(2 <= len(b) <= 10 for b in batches)
    assert len(batches) == loop.steps_per_epoch(203, 10)
    again = list(bucketed(lengths, 10, np.random.default_rng(1), pool=4))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


# ---- split and input checks ------------------------------------------------------------


def test_split_trains_on_folds_2_to_4_and_selects_on_fold_1(make_csv):
    s = load_split(make_csv())
    assert set(s.folds[s.train_rows]) == {2, 3, 4}
    assert set(s.folds[s.valid_rows]) == {1}
    assert not np.isin(s.train_rows, np.flatnonzero(s.folds == 0)).any()
    labels = s.data.table["label_group"].to_numpy()
    # labels are 0..C-1 over train rows, one code per group
    assert s.n_classes == len(set(labels[s.train_rows]))
    assert len(set(zip(s.train_labels, labels[s.train_rows], strict=True))) == s.n_classes


def test_labels_missing(make_csv):
    path = make_csv(synthetic_table().drop(columns="label_group"))
    with pytest.raises(InputError, match="label_group column missing"):
        load_split(path)


def test_a_fold_without_rows(make_csv):
    path = make_csv(synthetic_table(n_groups=4))
    with pytest.raises(InputError, match="4 distinct groups"):
        load_split(path)


def test_postings_alone_in_their_group_are_left_out_of_training(make_csv, caplog):
    df = synthetic_table()
    lonely = (1003, 1010, 1017, 1024, 1031, 1038, 1045)
    df = df[~(df["label_group"].isin(lonely) & ~df["posting_id"].str.endswith("_0"))]
    s = load_split(make_csv(df))
    labels = s.data.table["label_group"].to_numpy()
    alone = np.flatnonzero(np.isin(labels, lonely))
    in_train = alone[np.isin(s.folds[alone], (2, 3, 4))]
    assert len(in_train) and s.left_out == len(in_train)
    assert not np.isin(in_train, s.train_rows).any()
    assert np.isin(alone[s.folds[alone] == 1], s.valid_rows).all()  # still queries there
    assert s.n_classes == len(set(labels[s.train_rows]))
    first = int(in_train[0]) + 2
    assert f"line {first}" in caplog.text and "not trained on" in caplog.text


def test_no_pairs_to_train_on(make_csv):
    df = synthetic_table()
    df = df[df["posting_id"].str.endswith("_0")]  # every group down to one posting
    with pytest.raises(InputError, match="fewer than 2 label groups with two or more"):
        load_split(make_csv(df))


# ---- selection -------------------------------------------------------------------------


def _brute_f1(emb: np.ndarray, groups: np.ndarray, t: float, k: int) -> float:
    sims = emb @ emb.T
    out = []
    for i in range(len(emb)):
        top = np.argsort(-sims[i], kind="stable")[:k]
        pred = {i} | {int(j) for j in top if sims[i, j] >= t}
        true = set(np.flatnonzero(groups == groups[i]).tolist())
        out.append(2 * len(pred & true) / (len(pred) + len(true)))
    return float(np.mean(out))


def test_tuned_f1_is_the_engines_metric_at_the_best_threshold():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), rng.integers(2, 5, 30))
    centres = rng.normal(size=(30, 8))
    emb = centres[groups] + rng.normal(scale=0.6, size=(len(groups), 8))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    sel = tuned_f1(emb, groups, k=10)
    assert sel.f1 == pytest.approx(_brute_f1(emb, groups, sel.threshold, 10), abs=1e-5)
    grid = np.round(np.arange(0, 1.0001, 0.01), 2)
    assert sel.f1 >= max(_brute_f1(emb, groups, t, 10) for t in grid) - 1e-6


# ---- the loop with a tiny BERT ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"),
                           [*WORDS, "merah", "biru", "hitam"], hidden=16, layers=1,
                           intermediate=24, max_positions=64)


@pytest.fixture
def csv(make_csv) -> Path:
    return make_csv()


def _task(csv: Path, tiny_bert: Path, **kw):
    torch.manual_seed(0)
    return text_task(load_split(csv), str(tiny_bert), fc_dim=8, max_length=32, **kw)


def _cfg(out: Path, **kw) -> loop.LoopConfig:
    return loop.LoopConfig(out=out, **({"epochs": 2, "batch_size": 16, "lr": 1e-3,
                                        "head_lr_mult": 10, "progress": False} | kw))


def test_one_step_lowers_the_loss(csv, tiny_bert):
    task = _task(csv, tiny_bert)
    titles, labels = next(task.batches(0, 16, 0))
    task.model.train()
    opt = torch.optim.AdamW(task.param_groups(1e-3, 10))

    def loss() -> torch.Tensor:
        torch.manual_seed(0)  # the same dropout both times
        return task.loss(titles, labels)

    before = loss()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def test_fit_saves_a_checkpoint_build_loads_with_identical_embeddings(csv, tiny_bert, tmp_path):
    task = _task(csv, tiny_bert)
    rows = task.split.valid_rows
    untrained = task.embed(rows)
    summary = loop.fit(task, _cfg(tmp_path / "run"))
    assert [h["epoch"] for h in summary["history"]] == [0, 1, 2]
    best = tmp_path / "run" / loop.BEST
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["format"] == te.TEXT_FORMAT == "shopee-explorer-text/1"
    assert ckpt["epoch"] == summary["best"]["epoch"]
    assert ckpt["pooling"] == "mean" and ckpt["max_length"] == 32
    assert ckpt["data_sha256"] == task.split.sha256 and "torch" in ckpt["versions"]
    enc = te.load_text_encoder(f"{tiny_bert}:{best}")
    assert enc.info["kind"] == "explorer-checkpoint" and enc.info["max_length"] == 32
    titles = task.split.data.table["title"].iloc[rows].tolist()
    loaded = te.encode_texts(enc, titles, progress=False).emb
    if summary["best"]["epoch"] == summary["history"][-1]["epoch"]:
        assert np.allclose(loaded, task.embed(rows), atol=1e-5)
    assert not np.allclose(loaded, untrained, atol=1e-3)  # the trained weights were loaded
    assert tuned_f1(loaded, task.split.valid_groups).f1 == pytest.approx(
        summary["best"]["valid_f1"], abs=1e-5)
    # `precompute build --text NAME:CKPT` needs nothing else
    bundle = build(BuildOptions(csv=csv, out=tmp_path / "b.bundle", image=(), k=10,
                                text=(f"ft={tiny_bert}:{best}",), progress=False,
                                thumbnails=False))
    params = Bundle.open(bundle).manifest.modality("ft").params
    assert params["kind"] == "explorer-checkpoint" and params["max_length"] == 32


def test_selection_reads_fold_1_only_and_training_folds_2_to_4(csv, tiny_bert, tmp_path):
    task = _task(csv, tiny_bert)
    embedded, trained = [], []
    embed, batches = task.embed, task.batches

    def spy_embed(rows):
        embedded.append(np.array(rows))
        return embed(rows)

    def spy_batches(epoch, batch_size, seed):
        for titles, labels in batches(epoch, batch_size, seed):
            trained.extend(titles)
            yield titles, labels

    task.embed, task.batches = spy_embed, spy_batches
    loop.fit(task, _cfg(tmp_path / "run", epochs=1))
    assert len(embedded) == 2  # untrained + epoch 1
    assert all(np.array_equal(r, task.split.valid_rows) for r in embedded)
    folds = task.split.folds
    train_titles = [task.titles[r] for r in np.flatnonzero(np.isin(folds, [2, 3, 4]))]
    rest = list(train_titles)
    for title in trained:  # every trained title is a fold 2-4 title, each used once
        rest.remove(title)
    assert len(rest) <= 1  # a last batch of one row is dropped (BatchNorm)


class _Stop(Exception):
    pass


def test_resume_continues_the_schedule(csv, tiny_bert, tmp_path):
    whole = loop.fit(_task(csv, tiny_bert), _cfg(tmp_path / "a", epochs=3))
    task = _task(csv, tiny_bert)
    batches = task.batches

    def stop_in_epoch_2(epoch, batch_size, seed):
        if epoch == 1:
            raise _Stop
        yield from batches(epoch, batch_size, seed)

    task.batches = stop_in_epoch_2
    with pytest.raises(_Stop):
        loop.fit(task, _cfg(tmp_path / "b", epochs=3))
    with pytest.raises(InputError, match="pass --resume"):
        loop.fit(_task(csv, tiny_bert), _cfg(tmp_path / "b", epochs=3))
    resumed_task = _task(csv, tiny_bert)
    resumed = loop.fit(resumed_task, _cfg(tmp_path / "b", epochs=3, resume=True))
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2, 3]
    for a, b in zip(whole["history"][1:], resumed["history"][1:], strict=True):
        assert a["step"] == b["step"] and a["lr_last"] == pytest.approx(b["lr_last"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert whole["steps"] == resumed["steps"] == whole["steps_total"]
    state_a = torch.load(tmp_path / "a" / loop.LAST, weights_only=True)["model"]
    state_b = torch.load(tmp_path / "b" / loop.LAST, weights_only=True)["model"]
    assert all(torch.allclose(state_a[k].float(), state_b[k].float(), atol=1e-5)
               for k in state_a)
    with pytest.raises(InputError, match="max_length"):  # another model: refused
        loop.fit(text_task(load_split(csv), str(tiny_bert), fc_dim=8, max_length=16),
                 _cfg(tmp_path / "b", epochs=4, resume=True))


def test_time_limit_starts_no_epoch_that_would_pass_it(csv, tiny_bert, tmp_path):
    summary = loop.fit(_task(csv, tiny_bert), _cfg(tmp_path / "run", epochs=3,
                                                   max_minutes=1e-6))
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    assert "the limit is 1e-06 min" in summary["stopped"]
    resumed = loop.fit(_task(csv, tiny_bert), _cfg(tmp_path / "run", epochs=3, resume=True,
                                                   max_minutes=1e-6))
    assert len(resumed["history"]) == 2 and resumed["stopped"]  # the budget counts resumed time
    done = loop.fit(_task(csv, tiny_bert), _cfg(tmp_path / "run", epochs=3, resume=True))
    assert [h["epoch"] for h in done["history"]] == [0, 1, 2, 3] and done["stopped"] is None


def test_out_of_memory_names_a_smaller_batch(csv, tiny_bert, tmp_path):
    task = _task(csv, tiny_bert)

    def oom(inputs, labels):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    task.loss = oom
    with pytest.raises(InputError, match=r"out of memory on cpu at batch size 16; try --batch 8"):
        loop.fit(task, _cfg(tmp_path / "run", validate_untrained=False))


def test_cli_train_text_and_its_errors(csv, tiny_bert, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "text", "--csv", str(csv), "--model", str(tiny_bert), "--out", str(out),
            "--epochs", "1", "--batch", "16", "--fc-dim", "8", "--max-length", "32", "--quiet"]
    assert main(args) == 0
    assert (out / "best.pt").is_file() and (out / "history.json").is_file()
    assert "wrote" in capsys.readouterr().out
    # the run says whose labels it learned from: a build of this very table records the
    # folds (params.trained_on), one of another table does not
    import hashlib
    import json

    from precompute.modalities import trained_on

    history = json.loads((out / "history.json").read_text())
    sha = hashlib.sha256(csv.read_bytes()).hexdigest()
    assert (history["csv_sha256"], history["train_folds"]) == (sha, [2, 3, 4])
    assert trained_on(out / "best.pt", sha) == {"trained_on": ["fold2", "fold3", "fold4"]}
    assert trained_on(out / "best.pt", "0" * 64) == {}
    assert trained_on(out / "absent.pt", sha) == {}
    assert main(args) == 2  # a run is there and --resume is not given
    assert "pass --resume" in capsys.readouterr().err
    nolabels = tmp_path / "nolabels.csv"
    pd.read_csv(csv).drop(columns="label_group").to_csv(nolabels, index=False)
    args[3], args[7] = str(nolabels), str(tmp_path / "other")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("precompute: error: ") and "label_group column missing" in err
    assert err.count("\n") == 1


def test_out_of_memory_outside_a_training_step_is_one_line(csv, tiny_bert, tmp_path, capsys,
                                                           monkeypatch):
    """Embedding fold 1 (or a build) running out of memory ends with one line too."""
    from precompute.training import text

    def oom(self):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")

    monkeypatch.setattr(text.TextTask, "validate", oom)
    args = ["train", "text", "--csv", str(csv), "--model", str(tiny_bert), "--out",
            str(tmp_path / "run"), "--epochs", "1", "--batch", "16", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of memory" in err and "smaller --batch" in err
    monkeypatch.setattr(text.TextTask, "validate", lambda self: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # anything else is a bug, not bad input
        main([*args[:7], str(tmp_path / "run2"), *args[8:]])


def test_a_run_that_never_beats_the_untrained_model_says_so(csv, tiny_bert, tmp_path, capsys,
                                                            monkeypatch):
    from precompute.training import text
    from precompute.training.selection import Selection

    scores = iter([0.9, 0.5, 0.6])  # untrained, epoch 1, epoch 2
    monkeypatch.setattr(text.TextTask, "validate", lambda self: Selection(next(scores), 0.5))
    args = ["train", "text", "--csv", str(csv), "--model", str(tiny_bert), "--out",
            str(tmp_path / "run"), "--epochs", "2", "--batch", "16", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "best epoch 2: fold-1 F1 0.6000" in out
    assert "no epoch beat the untrained model (fold-1 F1 0.9000)" in out
    scores = iter([0.4, 0.5])
    args[7], args[9] = str(tmp_path / "better"), "1"
    assert main(args) == 0
    assert "no epoch beat" not in capsys.readouterr().out
