"""Training: the model, dataset loading and the Horovod worker program."""
