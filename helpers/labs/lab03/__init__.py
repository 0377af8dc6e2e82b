"""Lab 3: a Dataset, a training step, evaluation, a classifier trained to a threshold, and
gradient accumulation."""
