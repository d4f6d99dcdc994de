"""U-Net segmentation of EM stacks with PyTorch Lightning and Hydra (the tasks: python -m src.<task>)."""

import os

# albumentations asks PyPI for a newer version of itself when imported (a network call of up to 2 s in every run,
# rank and spawned worker); our runs reach nothing they were not told to. NO_ALBUMENTATIONS_UPDATE=0 asks again.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
