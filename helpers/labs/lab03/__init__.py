"""Lab 3: a Dataset, a training step, evaluation, and a classifier trained to a threshold."""
