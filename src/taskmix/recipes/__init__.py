"""Experiments built from training runs: the demo, and (later) the T5 and ExT5 studies."""
