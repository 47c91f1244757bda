"""Training: stage 1 (bicubic pretraining) and stage 2 (meta-transfer learning)."""
