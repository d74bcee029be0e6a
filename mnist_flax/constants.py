"""Facts about MNIST that every stage shares: the field's side, the number of classes, the files.

    from mnist_flax.constants import IMAGE_SIZE, NUM_CLASSES, SPLITS
"""

import pathlib

# The checkout the package runs from: where configs/, checkpoints/ and test/ are.
PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent

IMAGE_SIZE = 28  # MNIST's images are IMAGE_SIZE x IMAGE_SIZE pixels.
NUM_CLASSES = 10  # The digits 0-9.
# MNIST's four canonical IDX files, (images file, labels file, number of examples) per split; on
# disk each may be gzipped (the name plus ".gz"), as the download keeps them.
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
# The four files as downloaded (and as a folder given by hand usually holds them): gzipped.
FILES_GZ = tuple(f"{name}.gz" for images, labels, _ in SPLITS.values() for name in (images, labels))
