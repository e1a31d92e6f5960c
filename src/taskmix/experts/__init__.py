"""taskmix.experts."""
