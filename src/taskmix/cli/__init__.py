"""taskmix.cli."""
