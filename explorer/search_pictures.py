"""`explorer search-pictures BUNDLE TEXT [--scope S] [--top N] [--modality NAME]
[--device DEV] [--json]`: the app's "find pictures by words", headless.

Embeds TEXT with the bundle's cross-modal text tower (a `precompute text-query` child
process, explorer.text_query_client) and prints the postings of the scope whose pictures
fit it best (explorer.core.cross_search): rank, posting id, score (the cosine of the text
and the picture) and title, tab-separated, best first; or one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.core.bundle import Bundle, BundleError
from explorer.core.config import ConfigError
from explorer.core.cross_search import search_bundle
from explorer.core.titles import decoded_titles
from explorer.text_query_client import START_TIMEOUT_S, TextQueryClient, TextQueryError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="explorer search-pictures",
                                description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("bundle", type=Path, help="bundle folder with a cross-modal modality")
    p.add_argument("text", help="the words, e.g. \"botol minum hijau\"")
    p.add_argument("--scope", default="all", help="all or fold0..fold4 (default all)")
    p.add_argument("--top", type=int, default=10, help="postings to print (default 10)")
    p.add_argument("--modality", help="the cross-modal modality (default: the first)")
    p.add_argument("--device", help="the text model's device: cuda, cpu (default: cuda "
                   "when available)")
    p.add_argument("--timeout", type=float, default=START_TIMEOUT_S,
                   help=f"seconds to wait for the text model to load (default "
                   f"{START_TIMEOUT_S:g})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def search_pictures(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not args.text.strip():
        raise ConfigError("the text is empty")
    if args.top < 1:
        raise ConfigError(f"--top {args.top}: at least 1")
    bundle = Bundle.open(args.bundle, lazy=True)
    names = bundle.manifest.cross_modalities
    if not names:
        raise BundleError(f"{args.bundle}: no cross-modal modality (precompute build "
                          "--crossmodal NAME:CKPT adds one)")
    modality = args.modality or names[0]
    if modality not in names:
        raise BundleError(f"{modality!r} is not a cross-modal modality of this bundle "
                          f"(cross-modal: {', '.join(names)})")
    bundle.scope_rows(args.scope)  # an unknown scope fails before the model loads
    try:
        with TextQueryClient(args.bundle, modality, device=args.device,
                             start_timeout=args.timeout) as client:
            vector = client.embed(args.text)
    except TextQueryError as exc:
        print(f"explorer: error: {exc}", file=sys.stderr)
        return 2
    hits = search_bundle(bundle, modality, args.scope, vector, args.top)
    ids = bundle.items["posting_id"].iloc[hits.rows].astype(str).to_numpy()
    titles = decoded_titles(bundle)[hits.rows]
    if args.json:
        print(json.dumps({"text": args.text, "modality": modality, "scope": args.scope,
                          "results": [{"row": int(r), "posting_id": str(i),
                                       "score": round(float(s), 6), "title": str(t)}
                                      for r, i, s, t in zip(hits.rows, ids, hits.scores,
                                                            titles, strict=True)]},
                         ensure_ascii=False))
        return 0
    for rank, (i, s, t) in enumerate(zip(ids, hits.scores, titles, strict=True), 1):
        print(f"{rank}\t{i}\t{s:.4f}\t{' '.join(str(t).split())}")
    return 0
