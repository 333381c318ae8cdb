"""Training: config system, pure steps, checkpoints and the training loop."""
