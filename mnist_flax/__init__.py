"""mnist_flax: learn MNIST with JAX/Flax, then read digits in people's own image files.

Train:  python -m mnist_flax.main --config=configs/default.py
Infer:  python -m mnist_flax.infer --i test/3.jpg

The package is laid out along the path data takes: ``configs/`` -> ``data`` -> ``model`` ->
``train`` -> ``checkpoint`` -> ``preprocess`` -> ``infer``. Importing the package imports
nothing heavy, so the inference command starts quickly.
"""

__version__ = "0.1.0"
