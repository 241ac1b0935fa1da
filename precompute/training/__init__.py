"""Training the matching models: ArcFace / CurricularFace fine-tuning of image and text
encoders on folds 2-4, model selection by tuned mean F1 on fold 1 (fold 0 never touched),
checkpoints that `precompute build` loads directly."""
