"""`precompute` command line: `build` a bundle from a Shopee-format dataset, make the
built-in `demo` dataset and its bundle, or `train` an image or text model (ArcFace /
CurricularFace on folds 2-4, selected on fold 1) whose checkpoint `build` loads."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from explorer.core.bundle import BundleError
from precompute.errors import InputError, is_out_of_memory, one_line
from precompute.text_query import add_parser as add_text_query_parser


def _add_encoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when available)")
    p.add_argument("--batch-size", type=int, help="images or titles per batch")
    p.add_argument("--workers", type=int, help="image decoding processes")
    p.add_argument("--k", type=int, default=50, help="neighbours per posting, itself included")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="precompute", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="embed a Shopee-format dataset and write an index bundle")
    b.add_argument("--csv", type=Path, required=True, help="posting_id,image,image_phash,title,"
                   "label_group table (label_group and image_phash optional)")
    b.add_argument("--images", type=Path, help="image folder (neural image models, missing "
                   "phashes, thumbnails)")
    b.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    b.add_argument("--text", action="append", metavar="NAME[:CHECKPOINT]",
                   help="text modality, repeatable: tfidf, a sentence-transformers or "
                   "transformers model name or folder, optionally with a study checkpoint")
    b.add_argument("--image", action="append", metavar="NAME[:CHECKPOINT]",
                   help="image modality, repeatable: phash, or a timm model name with an "
                   "optional checkpoint (the study's or ours)")
    b.add_argument("--fuse", action="append", metavar="A,B[:wA,wB]",
                   help="add a modality that is the weighted concatenation of neural ones")
    b.add_argument("--crossmodal", action="append", metavar="NAME:CKPT",
                   help="add a cross-modal modality NAME (the title of one posting against "
                   "the picture of another) from a `precompute train crossmodal` best.pt; "
                   "needs --images")
    b.add_argument("--crossmodal-fit", action="append", metavar="NAME:IMAGE,TEXT",
                   help="add a cross-modal modality NAME whose CLIP-style heads are fitted "
                   "here over two neural modalities of this build (folds 2-4, chosen on "
                   "fold 1), e.g. cx:effnet,minilm")
    b.add_argument("--image-size", type=int, help="input size in px (default: the model's "
                   "or the checkpoint's)")
    b.add_argument("--no-thumbnails", action="store_true", help="do not pack thumbnails")
    b.add_argument("--search", choices=("exact", "approx", "auto"), default="auto",
                   help="neighbour search: exact, approximate (faiss IVF for embeddings, binary "
                   "IVF for phash, recall measured; TF-IDF is always exact), or auto: exact "
                   "below 150,000 rows a scope")
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="embed neural modalities with Ray Data: on the cluster at ADDRESS "
                   "(auto, HOST:PORT), or without ADDRESS on a local Ray with --workers CPUs "
                   "(needs the cluster extra)")
    _add_encoding_args(b)
    d = sub.add_parser("demo", help="generate the built-in demo dataset and build its bundle")
    d.add_argument("--out", type=Path, required=True, help="folder for the data and bundle")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--postings", type=int, default=1600)
    d.add_argument("--label-errors", default="0", metavar="SHARE",
                   help="give about this share of the label groups a deliberate label error "
                   "(0 to 0.5; split, merged or moved, listed in DIR/data/label_errors.csv)")
    _add_encoding_args(d)
    s = sub.add_parser("scale-data", help="write a Shopee-format CSV of N postings without "
                       "images (realistic titles, group sizes and phashes; for benches)")
    s.add_argument("--out", type=Path, required=True, help="CSV file to write")
    s.add_argument("--postings", required=True, metavar="N", help="rows, 2 to 5,000,000")
    s.add_argument("--seed", default="0", help="same N and seed, same bytes (default 0)")
    s.add_argument("--force", action="store_true", help="replace a CSV this command wrote")
    s.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    t = sub.add_parser("train", help="fine-tune an image or text model with a margin loss")
    tsub = t.add_subparsers(dest="modality", required=True)
    ti = tsub.add_parser("image", help="timm backbone + fc/BN + margin layer")
    ti.add_argument("--images", type=Path, required=True, help="image folder")
    ti.add_argument("--model", required=True, metavar="TIMM_NAME", help="timm architecture")
    ti.add_argument("--pretrained", metavar="NAME|PATH", help="starting weights: a packaged "
                    "model name (tf_efficientnet_lite0), 'hub' for timm's download, or a "
                    "checkpoint file (ours or a backbone state_dict); default random init")
    ti.add_argument("--size", type=int, help="input size in px (default: the model's)")
    ti.add_argument("--workers", type=int, help="image decoding processes")
    _add_training_args(ti, margin=0.5, lr=3e-4, batch=32)
    tt = tsub.add_parser("text", help="transformers backbone, mean pooling + fc/BN + margin")
    tt.add_argument("--model", required=True, metavar="ST_OR_HF_NAME_OR_PATH",
                    help="base model: all-MiniLM-L6-v2 (packaged), a local folder or a hub name")
    tt.add_argument("--max-length", type=int, default=128, help="tokens per title")
    _add_training_args(tt, margin=0.5, lr=5e-5, batch=64)
    _add_crossmodal_parser(tsub)
    add_text_query_parser(sub)
    return p


def _add_crossmodal_parser(tsub: argparse._SubParsersAction) -> None:
    tc = tsub.add_parser("crossmodal", help="CLIP-style projection heads over an image and a "
                         "text encoder, frozen or partly unfrozen (titles against pictures)")
    tc.add_argument("--csv", type=Path, required=True, help="labelled Shopee-format table")
    tc.add_argument("--images", type=Path, required=True, help="image folder")
    tc.add_argument("--image", required=True, metavar="NAME[:CHECKPOINT]",
                    help="image encoder, as `build --image` loads it (tf_efficientnet_lite0)")
    tc.add_argument("--text", required=True, metavar="NAME[:CHECKPOINT]",
                    help="text encoder, as `build --text` loads it (all-MiniLM-L6-v2)")
    tc.add_argument("--out", type=Path, required=True, help="run folder: best.pt, "
                    "crossmodal.json")
    tc.add_argument("--epochs", type=int, default=20)
    tc.add_argument("--batch", type=int, default=256, help="pairs per batch (the negatives)")
    tc.add_argument("--lr", type=float, default=1e-3)
    tc.add_argument("--dim", type=int, default=256, help="size of the shared space")
    tc.add_argument("--unfreeze-image", type=int, default=0, metavar="N",
                    help="also train the image encoder's last N blocks and the layers after "
                    "them (default 0: frozen, features cached)")
    tc.add_argument("--unfreeze-text", type=int, default=0, metavar="N",
                    help="also train the text encoder's last N transformer layers (default 0)")
    tc.add_argument("--encoder-lr", type=float, default=1e-5,
                    help="learning rate of the unfrozen encoder blocks (default 1e-5)")
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when available)")
    tc.add_argument("--force", action="store_true", help="replace a run in --out")
    tc.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")


def _add_training_args(p: argparse.ArgumentParser, *, margin: float, lr: float,
                       batch: int) -> None:
    p.add_argument("--csv", type=Path, required=True, help="labelled Shopee-format table")
    p.add_argument("--out", type=Path, required=True, help="run folder: last.pt, best.pt, "
                   "history.json")
    p.add_argument("--loss", choices=("arcface", "curricular"), default="arcface")
    p.add_argument("--margin", type=float, default=margin)
    p.add_argument("--margin-start", type=float, help="ramp the margin up from this value")
    p.add_argument("--margin-ramp-epochs", type=int, default=0, help="epochs of the ramp")
    p.add_argument("--scale", type=float, default=30.0)
    p.add_argument("--fc-dim", type=int, default=512, help="embedding size of the fc/BN head")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate of the backbone")
    p.add_argument("--head-lr-mult", type=float, default=10.0,
                   help="learning-rate multiplier of the fc/BN head and class centres")
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up, fraction of all steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when available)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--max-minutes", type=float, help="start no epoch that would end past this "
                   "many minutes of training (the run's epochs so far included)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _quiet_libraries() -> None:
    """--quiet also silences the hub's and transformers' own progress bars ("Loading
    weights"), which otherwise print to stderr."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub is imported
    if "transformers" in sys.modules:  # already imported: switch it off there too
        sys.modules["transformers"].utils.logging.disable_progress_bar()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup (the writer's temporary folder,
    the target lock) runs the same way."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def _os_error(exc: OSError) -> str:
    """`path: reason` of a failed file operation, as one line."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    reason = exc.strerror or one_line(exc)
    return f"{where}: {reason}" if where else reason


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "text-query":  # a protocol on stdout, not a build's messages
        from precompute.text_query import run

        return run(args)
    if args.quiet:
        _quiet_libraries()
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        from precompute.build import BuildOptions, build

        if args.command == "train" and args.modality == "crossmodal":
            from precompute.training import crossmodal

            out = crossmodal.train_from_args(args)
        elif args.command == "train":
            from precompute.training.run import train_from_args

            out = train_from_args(args)
        elif args.command == "build":
            text = tuple(args.text) if args.text else (() if args.image else ("tfidf",))
            image = tuple(args.image) if args.image else (() if args.text else ("phash",))
            out = build(BuildOptions(
                csv=args.csv, out=args.out, images=args.images, text=text, image=image,
                fuse=tuple(args.fuse or ()),
                crossmodal=tuple(args.crossmodal or ()),
                crossmodal_fit=tuple(args.crossmodal_fit or ()), k=args.k, force=args.force,
                progress=not args.quiet, thumbnails=not args.no_thumbnails,
                device=args.device, batch_size=args.batch_size, workers=args.workers,
                image_size=args.image_size, search=args.search, ray=args.ray))
        elif args.command == "scale-data":
            from precompute.scale_data import parse_count, parse_seed, write_scale_data

            out = write_scale_data(args.out, parse_count(args.postings), force=args.force,
                                   seed=parse_seed(args.seed))
        else:
            from precompute.demo import build_demo, parse_label_errors

            out = build_demo(args.out, seed=args.seed, n_postings=args.postings,
                             force=args.force, progress=not args.quiet, device=args.device,
                             batch_size=args.batch_size, workers=args.workers, k=args.k,
                             label_errors=parse_label_errors(args.label_errors))
        print(f"wrote {out}")
    except (InputError, BundleError) as exc:
        print(f"precompute: error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        flag = "--batch" if args.command == "train" else "--batch-size"
        print(f"precompute: error: out of memory ({one_line(exc)}); try a smaller {flag}",
              file=sys.stderr)
        return 2
    except OSError as exc:  # a file we could not read or write: by class, at the boundary
        print(f"precompute: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        left = ("any epochs finished are kept in --out (--resume continues)"
                if args.command == "train" and args.modality != "crossmodal"
                else "nothing was written")
        print(f"precompute: {what}; {left}", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
