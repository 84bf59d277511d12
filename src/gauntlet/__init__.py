"""gauntlet: a training pipeline where every model faces the same fixed comparison protocol."""

__version__ = "0.1.0"
