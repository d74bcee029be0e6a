"""One-line messages: file names shown printable, and never two names alike."""

from __future__ import annotations

import os

from mnist_flax import errors


def test_integrity_of_shown_paths_two_different_names_never_print_alike():
  names = [os.fsdecode(b"a\xffb.png"), "a\\xffb.png", "a\\\\xffb.png", "a\nb.png", "a\\nb.png",
           "plain.png", os.fsdecode(b"\xfe\xff"), "\\xfe\\xff"]
  shown = [errors.shown_path(n) for n in names]
  assert len(set(shown)) == len(names), shown
  assert all(s.isprintable() for s in shown)
  assert errors.shown_path("plain.png") == "plain.png"
  assert errors.shown_path(os.fsdecode(b"a\xffb.png")) == "a\\xffb.png"
