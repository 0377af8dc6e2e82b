"""Lab 3: a Dataset, a training step, evaluation, early stopping that restores the best
weights, and gradient accumulation."""
