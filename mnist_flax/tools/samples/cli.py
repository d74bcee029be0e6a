"""The command that writes sample pictures: ``python -m mnist_flax.tools.samples``.

    python -m mnist_flax.tools.samples test                      # the committed sample set
    python -m mnist_flax.tools.samples /tmp/bench --count 1000 --seed 0   # a benchmark folder
    python -m mnist_flax.tools.samples /tmp/photos --kind photos --count 200 --seed 0

``--kind plain`` (the default) is drawn by ``formats``; the photo kinds by ``kinds`` and
``cases``, imported only for them (they need OpenCV). An output folder it cannot write exits
with the workdir error's code (see ``mnist_flax.errors``), in one line.
"""

from __future__ import annotations

from collections.abc import Sequence

from mnist_flax import errors
from mnist_flax.tools.samples.formats import make_samples

KINDS = ("plain", "photos", "numbers", "printed", "nondigits", "cases")


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command on ``argv`` (default: the process's); returns the exit code."""
  parser = errors.ArgumentParser(
      prog="python -m mnist_flax.tools.samples",
      description="Draw handwritten-looking digit images (no dataset needed).")
  parser.add_argument("out_dir", help="folder to write into (created if missing)")
  parser.add_argument("--kind", choices=KINDS, default="plain",
                      help="what to draw (default plain; see the module docstring)")
  parser.add_argument("--count", type=int, default=None,
                      help="write this many varied images instead of the committed set "
                      "(photo kinds: default 100; cases: default one per case)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  try:
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 0:
      parser.error("--count must be >= 0")
  except errors.ConfigError as e:
    return errors.report(e, parser.prog)
  try:
    if args.kind == "plain":
      paths = make_samples(args.out_dir, count=args.count, seed=args.seed)
      if args.count is None:  # The committed set has phone photos of issue 13's cases too.
        from mnist_flax.tools.samples import cases
        paths += cases.write_committed(args.out_dir)
    else:
      # OpenCV is only needed for the photo kinds.
      from mnist_flax.tools.samples import cases, kinds
      default = len(cases.CASES) if args.kind == "cases" else 100
      paths = kinds.make_kind(args.kind, args.out_dir,
                              count=default if args.count is None else args.count,
                              seed=args.seed)
  except OSError as e:
    # An output folder we cannot write is the same situation as an unwritable workdir.
    return errors.report(errors.WorkdirError(
        f"cannot write to {args.out_dir}: {e.strerror or e}"), parser.prog)
  print(f"wrote {len(paths)} images to {args.out_dir}")
  return 0
