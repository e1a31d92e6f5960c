"""Training runs: config, plan, model building, the loop, checkpoints, run folders."""
