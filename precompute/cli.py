"""`precompute` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.core.bundle import BundleError
from precompute.errors import InputError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="precompute", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="embed a Shopee-format dataset and write an index bundle")
    b.add_argument("--csv", type=Path, required=True, help="posting_id,image,image_phash,title,"
                   "label_group table (label_group and image_phash optional)")
    b.add_argument("--images", type=Path, help="image folder (to compute missing phashes)")
    b.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    b.add_argument("--text", action="append", help="text modality, repeatable (tfidf)")
    b.add_argument("--image", action="append", help="image modality, repeatable (phash)")
    b.add_argument("--k", type=int, default=50, help="neighbours per posting, itself included")
    b.add_argument("--force", action="store_true", help="replace an existing bundle")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            from precompute.build import BuildOptions, build

            text = tuple(args.text) if args.text else (() if args.image else ("tfidf",))
            image = tuple(args.image) if args.image else (() if args.text else ("phash",))
            out = build(BuildOptions(csv=args.csv, out=args.out, images=args.images, text=text,
                                     image=image, k=args.k, force=args.force,
                                     progress=not args.quiet))
            print(f"wrote {out}")
    except (InputError, BundleError) as exc:
        print(f"precompute: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("precompute: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
