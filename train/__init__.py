"""Training and evaluation entry points: ``python -m train.train`` and ``python -m train.evaluate``."""
