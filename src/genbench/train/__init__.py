"""One method-agnostic training loop: optimisers per player, EMA, checkpoints, logging."""
