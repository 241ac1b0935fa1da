"""`explorer` command line: `explorer [BUNDLE]` opens the desktop app, `explorer evaluate
BUNDLE ...` prints the app's numbers headless, `explorer learn BUNDLE ...` trains the pair
classifier into the bundle (explorer/learn.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.core import modes
from explorer.core.bundle import Bundle, BundleError
from explorer.core.config import MAX_INB, ConfigError, InbStage, MatchConfig, Post, parse_mode
from explorer.core.state import SettingsDoc, read_settings


def _evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="explorer evaluate",
        description="Mean precision / recall / F1 of a matching configuration on a scope.")
    p.add_argument("bundle", type=Path, help="bundle folder written by `precompute build`")
    p.add_argument("--scope", help="all or fold0..fold4 (default fold0, or all without labels)")
    p.add_argument("--tune-on", metavar="SCOPE",
                   help="tune every threshold not given on this scope, then apply to --scope")
    p.add_argument("--mode", help="modality name, or union:A,B / sum:A,B[:wA,wB] / prob:A,B")
    p.add_argument("--threshold", type=float, nargs="+", metavar="T",
                   help="similarity threshold (a union takes one per modality)")
    p.add_argument("--min2", type=float, nargs="*", metavar="T",
                   help="turn Min2 on, optionally with its threshold(s)")
    p.add_argument("--inb", type=int, default=None, metavar="N", help="INB iterations (0-5)")
    p.add_argument("--inb-threshold", type=float, nargs="+", metavar="T",
                   help="threshold of each INB iteration")
    p.add_argument("--inb-exact", action="store_true",
                   help="re-search neighbours exactly after each blend (default: re-score "
                   "each posting's candidates)")
    p.add_argument("--units", action="store_true", help="drop pairs whose titles name "
                   "different quantities (250ml vs 500ml)")
    p.add_argument("--mutual", type=float, nargs="*", metavar="T",
                   help="post-processing: keep a pair only when the other posting scores "
                   "the query back at least T (tuned when T is not given)")
    p.add_argument("--merge", type=float, nargs="*", metavar="V",
                   help="post-processing: merge predicted groups, best pair first, toward a "
                   "mean group size TARGET with groups of at most MAX postings "
                   "(--merge TARGET MAX; tuned when not given)")
    p.add_argument("--chisel", type=float, nargs="*", metavar="V",
                   help="post-processing: a query predicting more than SIZE postings keeps "
                   "only pairs scoring T or more (--chisel SIZE T; tuned when not given)")
    p.add_argument("--best", action="store_true", help="also search the mode, weights, Min2, "
                   "INB iterations, the unit filter and post-processing on --tune-on")
    p.add_argument("--settings", type=Path, help="settings JSON exported by the app or --json")
    p.add_argument("--export-csv", type=Path, metavar="PATH",
                   help="write predictions as posting_id,matches (competition format)")
    p.add_argument("--export-metrics", type=Path, metavar="PATH",
                   help="write per-query precision / recall / F1 as CSV")
    p.add_argument("--export-errors", type=Path, metavar="PATH",
                   help="write every false-positive and missed (query, posting) pair as CSV, "
                   "with scores, similarities and the reason of each miss")
    p.add_argument("--export-confused", type=Path, metavar="PATH",
                   help="write every pair of label groups joined by false positives as CSV, "
                   "most completely joined first (labelling errors, pack-size cases)")
    p.add_argument("--export-audit", type=Path, metavar="PATH",
                   help="write the label audit as CSV: label groups that fall apart (split), "
                   "pairs of groups the predictions join (merge) and postings another group "
                   "takes (posting), ranked on one 0-1 score")
    p.add_argument("--exclude-marked", type=Path, metavar="MARKS",
                   help="also report the metrics without the postings a marks CSV "
                   "(posting_id,mark, as the app's audit exports) marks as label errors")
    p.add_argument("--no-timing", action="store_true", help="skip the timing measurements")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _config(args: argparse.Namespace, bundle: Bundle,
            doc: SettingsDoc | None) -> tuple[MatchConfig | None, set[str]]:
    """The configuration the flags describe and the names of the parameters they fix."""
    if doc is not None:
        fixed = {"threshold", "min2", "mutual", "merge", "chisel",
                 *(f"inb{k}.{p}" for k in range(1, MAX_INB + 1) for p in ("threshold", "min2"))}
        return doc.config, (set() if args.tune_on else fixed)
    if args.mode is None:
        if args.best:
            return None, set()
        names = [m.name for m in bundle.manifest.modalities]
        raise ConfigError(f"give --mode (one of {', '.join(names)}, or a fusion such as "
                          f"sum:{','.join(names[:2])}) or --best")
    mode, mods, weights = parse_mode(args.mode)
    n = modes.MODES[mode].n_thresholds(len(mods))
    fixed: set[str] = set()
    thresholds = (0.5,) * n
    if args.threshold:
        thresholds, fixed = tuple(args.threshold), fixed | {"threshold"}
    min2 = None
    if args.min2 is not None:
        min2 = tuple(max(t - 0.1, -1.0) for t in thresholds)  # inside [-1, 1]
        if args.min2:
            min2, fixed = tuple(args.min2), fixed | {"min2"}
    depth = args.inb or 0
    if not 0 <= depth <= MAX_INB:
        raise ConfigError(f"--inb {depth}: INB iterations must be 0..{MAX_INB}")
    inb_t = list(args.inb_threshold or [])
    if len(inb_t) > depth:
        raise ConfigError(f"--inb-threshold: {len(inb_t)} values for {depth} INB iterations")
    fixed |= {f"inb{k + 1}.threshold" for k in range(len(inb_t))}
    stages = tuple(InbStage(inb_t[k] if k < len(inb_t) else 0.5,
                            None if min2 is None else 0.4) for k in range(depth))
    post, post_fixed = _post(args)
    fixed |= post_fixed
    cfg = MatchConfig(mode, mods, thresholds, weights, min2, stages, args.inb_exact, args.units,
                      post)
    if not args.tune_on and not args.best:
        missing = [x for x in ("threshold",) if x not in fixed]
        missing += [x for x in ("mutual", "merge", "chisel")
                    if getattr(post, x) is not None and x not in fixed]
        missing += [f"inb{k + 1}.threshold" for k in range(len(inb_t), depth)]
        if min2 is not None and "min2" not in fixed:
            missing.append("min2")
        if missing:
            raise ConfigError(f"no value for {', '.join(missing)}: give it, or --tune-on SCOPE "
                              "to tune it")
    return cfg, fixed


def _post(args: argparse.Namespace) -> tuple[Post, set[str]]:
    """The post-processing stages the flags switch on (placeholder values where a stage's
    values are to be tuned) and the names of those given values."""
    given: dict[str, object] = {}
    fixed: set[str] = set()
    shapes = {"mutual": (1, 0.0), "merge": (2, (3.0, 51)), "chisel": (2, (10, 0.9))}
    for name, (count, default) in shapes.items():
        values = getattr(args, name)
        if values is None:
            continue
        if values and len(values) != count:
            usage = {"mutual": "T", "merge": "TARGET MAX", "chisel": "SIZE T"}[name]
            raise ConfigError(f"--{name}: give {usage}, or no value to tune it")
        if values:
            given[name] = values[0] if count == 1 else tuple(values)
            fixed.add(name)
        else:
            given[name] = default
    return Post(**given), fixed


# export kind (explorer.core.export.FRAMES) -> its option's attribute
EXPORT_FLAGS = {"predictions": "export_csv", "metrics": "export_metrics",
                "errors": "export_errors", "confused": "export_confused",
                "audit": "export_audit"}


def evaluate(argv: list[str]) -> int:
    args = _evaluate_parser().parse_args(argv)
    from explorer.core import export
    from explorer.core.atomic_write import UnsafeTarget, check_target
    from explorer.core.audit_marks import excluding, marked_rows, read_marks
    from explorer.core.evaluate import run

    doc = read_settings(args.settings) if args.settings else None  # before the bundle: fast
    marks = read_marks(args.exclude_marked) if args.exclude_marked else None
    bundle = Bundle.open(args.bundle)
    if doc is not None:
        doc.check(bundle.manifest.scopes, [m.name for m in bundle.manifest.modalities],
                  str(args.settings))
    scope = args.scope or (doc.scope if doc is not None and doc.scope else None) or (
        "fold0" if "fold0" in bundle.manifest.scopes else "all")
    for s in (scope, args.tune_on):
        if s is not None:
            bundle.scope_rows(s)
    cfg, fixed = _config(args, bundle, doc)
    if (args.best or args.tune_on) and not bundle.manifest.has_labels:
        raise ConfigError("tuning needs labels, and this bundle has no label_group")
    exports = {kind: path for kind, flag in EXPORT_FLAGS.items()
               if (path := getattr(args, flag)) is not None}
    for kind, path in exports.items():  # fail before the work
        flag = "--" + EXPORT_FLAGS[kind].replace("_", "-")
        if kind in export.NEED_LABELS and not bundle.manifest.has_labels:
            raise ConfigError(f"{flag} needs labels, and this bundle has no label_group")
        try:
            check_target(path)
        except UnsafeTarget as exc:
            raise ConfigError(f"{flag} {exc}") from None
    if marks is not None and not bundle.manifest.has_labels:
        raise ConfigError("--exclude-marked needs labels, and this bundle has no label_group")
    if len(set(exports.values())) < len(exports):
        raise ConfigError("two --export-* options name the same file")
    warnings = _tuning_warnings(args, scope, bundle.manifest.has_labels)
    for line in warnings:
        print(f"explorer: warning: {line}", file=sys.stderr)
    progress = None if args.json else (lambda msg: print(f"  tuning {msg}", file=sys.stderr))
    report = run(bundle, scope=scope, cfg=cfg, tune_on=args.tune_on, fixed=fixed,
                 search_best=args.best, modalities=cfg.modalities if cfg and args.best else None,
                 timing=not args.no_timing, progress=progress)
    for kind, path in exports.items():
        export.write_csv(export.FRAMES[kind](report.engine, report.evaluation), path)
    excluded = None
    if marks is not None:
        rows = marked_rows(report.engine, marks)
        m = excluding(report.engine, report.evaluation, rows)
        excluded = {"marks": str(args.exclude_marked), "excluded_postings": len(rows),
                    "metrics": None if m is None else m.to_dict()}
    if args.json:
        out = report.to_json()
        if excluded is not None:
            out["without_marked"] = excluded
        if warnings:
            out["warnings"] = warnings
        print(json.dumps(out, indent=2, allow_nan=False))
    else:
        _print_report(report)
        if excluded is not None and excluded["metrics"] is not None:
            m = excluded["metrics"]
            print(f"without {excluded['excluded_postings']} postings marked as label errors: "
                  f"F1 {m['f1']:.4f}  precision {m['precision']:.4f}  recall {m['recall']:.4f}"
                  f"  ({m['n_queries']} queries)")
    return 0


def _tuning_warnings(args: argparse.Namespace, scope: str, labelled: bool) -> list[str]:
    """Say so when the figure is tuned on the very data it reports (allowed: an analyst
    may want the ceiling, but it must not pass for a held-out number)."""
    if not labelled:
        return []
    if args.tune_on == scope or (args.best and args.tune_on is None):
        what = "the best configuration was searched" if args.best else "thresholds were tuned"
        other = " (e.g. --tune-on fold1)" if scope == "fold0" else ""
        return [f"{what} on {scope}, the scope it reports: the figure is optimistic; tune "
                f"on another scope{other} for a held-out number"]
    return []


def _print_report(report) -> None:
    m = report.evaluation.metrics
    tuned = f" (thresholds tuned on {report.tuned_on})" if report.tuned_on else ""
    print(f"scope {report.scope}{tuned}")
    print(f"config {json.dumps(report.config.to_dict())}")
    if m is None:
        print(f"{len(report.evaluation.f1)} queries; no labels, so no metrics")
    else:
        print(f"F1 {m.f1:.4f}  precision {m.precision:.4f}  recall {m.recall:.4f}  "
              f"({m.n_queries} queries)")
    for k, v in report.timing_ms.items():
        if v is not None:
            print(f"{k} {v:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "evaluate":
            return evaluate(argv[1:])
        if argv and argv[0] == "learn":
            from explorer.learn import learn  # LightGBM only when learning

            return learn(argv[1:])
        if argv and argv[0] == "search-pictures":
            from explorer.search_pictures import search_pictures

            return search_pictures(argv[1:])
        from explorer.gui.app import run_app  # Qt only for the app, not for `evaluate`

        return run_app(argv)
    except (BundleError, ConfigError) as exc:
        print(f"explorer: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an export that cannot be written (permissions, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"explorer: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("explorer: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
