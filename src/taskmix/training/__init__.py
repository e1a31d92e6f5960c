"""taskmix.training."""
