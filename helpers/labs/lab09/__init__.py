"""Lab 9: shard a batch and a weight, average gradients, train data-parallel, ring all-reduce."""
