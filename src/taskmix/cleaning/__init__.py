"""taskmix.cleaning."""
