"""LightGBM settings of the pair classifier against fold-0 F1 (issue 11): does another
learning rate or tree size move the learned mode? Each variant is trained on folds 2-4,
early-stopped on fold 1 (as `explorer learn`), and its probability tuned on fold 1 with
Min2 and INB 0-2 (explorer.core.tune.tune_chain), reported on fold 0.

    python bench/learned_params.py BUNDLE ['{"learning_rate": 0.02}' ...]

Without variants: the defaults (explorer.core.pair_model.PARAMS) and three others."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from explorer.core import pair_model
from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine
from explorer.core.tune import tune_chain

VARIANTS = [{}, {"learning_rate": 0.02}, {"num_leaves": 255, "min_data_in_leaf": 50},
            {"num_leaves": 15, "min_data_in_leaf": 100}]
NAME = "learned:bench"


def main(argv: list[str]) -> int:
    bundle = Bundle.open(Path(argv[0]))
    variants = [json.loads(v) for v in argv[1:]] or VARIANTS
    engines = {s: Engine(bundle, s) for s in ("fold0", "fold1", "fold2", "fold3", "fold4")}
    sha = str(bundle.manifest.dataset.get("sha256", ""))
    defaults = dict(pair_model.PARAMS)
    for variant in variants:
        pair_model.PARAMS = {**defaults, **variant}
        t0 = time.perf_counter()
        model = pair_model.train_model([engines[s] for s in ("fold2", "fold3", "fold4")],
                                       engines["fold1"], sha)
        seconds = time.perf_counter() - t0
        for s in ("fold0", "fold1"):  # the variant's scores as the engine's derived modality
            engines[s]._derived[NAME] = pair_model.pair_scores(model, engines[s])
            engines[s]._stages.clear()
        chain = tune_chain(engines["fold1"], MatchConfig("learned", (NAME,), (0.5,),
                                                          min2=(0.4,)), 2)
        f1 = [f"{t.f1:.4f}/{engines['fold0'].evaluate(t.config).metrics.f1:.4f}"
              for t in chain]
        print(f"{variant or 'defaults'}: {model.best_iteration} trees in {seconds:.0f} s; "
              f"fold-1/fold-0 F1 with Min2 and INB 0, 1, 2: {', '.join(f1)}", flush=True)
    pair_model.PARAMS = defaults
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
