"""Sample pictures of digits drawn by the project itself (pen strokes, never MNIST).

The images in test/, the benchmark's folders and the tests' pictures all come from here. The
path of the data, one module a step:

    strokes      digit skeletons in a unit box, smooth curves through them
    drawing      a digit as a plain image (PIL)           -> formats  files in every format and
                                                                        mode (the plain kind)
    handwriting  pens; digits, numbers, letters, scribbles in mm on a sheet
    marks        marks in mm (strokes, polygons, printed text), rasterized to ink coverage
    paper        the scene: sheet or plate, rulings, a form's box, desk and wall
    light        exposure, colour cast, gradients, shadows
    camera       the phone: perspective, ink on paper, blur, noise, JPEG
    photo        one phone photo of a truth, every choice made  (randomness: shared draws)
    cases        issue 13's named cases, and those shipped in test/
    kinds        folders of photos of a kind, with .truth.jsonl
    cli          the command (``__main__`` runs it)

    import numpy as np
    from mnist_flax.tools import samples
    image = samples.draw_digit(3, np.random.default_rng(0), size=(280, 280))

    python -m mnist_flax.tools.samples test                      # the committed sample set
    python -m mnist_flax.tools.samples /tmp/bench --count 1000 --seed 0   # a benchmark folder
    python -m mnist_flax.tools.samples /tmp/photos --kind photos --count 200 --seed 0

Kinds (``--kind``, default plain):

plain      drawings as apps and scanners save them, in every format and mode (``formats``)
photos     phone photos (JPEG, 1.2-12 MP) of one handwritten digit on plain, ruled or squared
           paper, in a form's box or on a house-number plate; marker, pen, blue ballpoint or
           faint pencil; even light, gradients, soft and hard shadows, a hand's or a phone's
           shadow; the desk; tilt
numbers    such photos of several digits side by side: "42", "2026", "07", years
printed    such photos of a printed digit (Pillow's font; a "1" with a flag and a base)
nondigits  such photos of a letter, a scribble or a smiley (names start with ``x_``)
cases      one such photo for each failure listed in issue 13 (``3_ruled.jpg``,
           ``5_shadow.jpg``, ``2026_ruled.jpg``, ``x_A.jpg``, ...)

Every file name starts with the truth (``3.jpg``, ``7_transparent.png``,
``4_0123_photo.jpg``, ``2026_ruled_pen_even_0012.jpg``, ``x_A_plain_pen_even_0003.jpg``),
which is how the benchmark knows the true label. Importing this package does not import
OpenCV; the photo modules do.
"""

from mnist_flax.tools.samples.cli import KINDS, main
from mnist_flax.tools.samples.drawing import draw_digit
from mnist_flax.tools.samples.formats import make_samples

__all__ = ["KINDS", "draw_digit", "make_samples", "main"]
