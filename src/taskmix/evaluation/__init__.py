"""taskmix.evaluation."""
