"""taskmix.mtdnn."""
