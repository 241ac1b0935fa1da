"""Learned: the pair classifier's probability (explorer.core.pair_model) thresholded like
a similarity. Its one "modality" is the model, `learned:NAME` (the bundle's
models/NAME), which the engine derives once per scope for every candidate pair of the
graph's union: the classifier scores them all, not one modality's list. A cross-fitted
model (`explorer learn --cross-fit`, explorer.core.cross_fit) scores each query's pairs by
the model of the query's fold, which never read that fold's labels: out-of-fold on scope
`all`, and on foldK model k alone (the features are computed once, only the prediction is
split by model).

INB blends over the classifier's predicted neighbours: the model has no embedding, so the
engine gives it the identity space (explorer.core.engine.Engine.space); after one step a
pair scores the cosine of the two postings' probability-weighted neighbourhoods."""

from __future__ import annotations

from explorer.core.modes import single
from explorer.core.modes.base import Mode

DEFAULT_MODEL = "pairs"  # what `explorer learn` names a model by default


# scored as one modality is (its probability as it is, the unit filter's pairs excluded);
# what differs is which pairs: all of the union ("all"), not a list of its own
MODE = Mode("learned", fusion=False, per_modality=False, weighted=False, blends=True,
            columns="all", words="", choice="", score=single.MODE.score, derived=True)
