"""Pure numpy / faiss / pandas core: bundle, engine, metrics. No Qt, no torch."""
