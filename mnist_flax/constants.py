"""Facts about MNIST that every stage shares: the field's side and the number of classes.

    from mnist_flax.constants import IMAGE_SIZE, NUM_CLASSES
"""

IMAGE_SIZE = 28  # MNIST's images are IMAGE_SIZE x IMAGE_SIZE pixels.
NUM_CLASSES = 10  # The digits 0-9.
