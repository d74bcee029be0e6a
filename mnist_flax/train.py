"""Training: pure state creation, jitted steps, and the loop that checkpoints and evaluates.

    from mnist_flax import train
    summary = train.train_and_evaluate(config, workdir)   # what `python -m mnist_flax.main` does

The pieces are small pure functions in the style of the Flax examples:

* ``create_train_state(rng, config)``: a fresh, immutable ``TrainState``.
* ``train_step(state, batch, rng) -> (state, metrics)``: one jitted update, state donated.
* ``eval_step(state, batch) -> sums``: jitted loss and accuracy sums over a masked batch.
* ``draw_batch``: jitted gather of a batch from the dataset kept in device memory.

Every random choice is derived from ``(config.seed, step)`` with ``jax.random.fold_in``: data
order comes from a per-epoch permutation, augmentation and dropout from the step number. A run
killed at any point and resumed from a checkpoint therefore retraces the uninterrupted run and
ends with bit-identical parameters (same config, same machine).
"""

from __future__ import annotations

import functools
import json
import math
import os
import pathlib
import platform
import signal
import sys
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from mnist_flax import calibration, checkpoint, config as config_lib, data, distributed, errors
from mnist_flax import model
from mnist_flax import run_log, workdir as workdir_lib

# Distinct streams from the one seed, so adding a random choice never shifts another.
_INIT, _DATA, _STEP = 0, 1, 2


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the model's batch statistics (an empty dict without batch norm)."""

  batch_stats: Any = flax.struct.field(default_factory=dict)


def make_schedule(opt: ml_collections.ConfigDict, num_iterations: int) -> optax.Schedule:
  if opt.schedule == "constant":
    return optax.constant_schedule(opt.learning_rate)
  warmup = int(opt.warmup_fraction * num_iterations)
  if opt.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, opt.learning_rate, max(warmup, 1), num_iterations, end_value=0.0)
  # One-cycle: linear warm-up from lr/25, then cosine annealing to ~0 (as in PyTorch's OneCycleLR).
  return optax.cosine_onecycle_schedule(
      num_iterations, opt.learning_rate, pct_start=max(opt.warmup_fraction, 1e-3),
      div_factor=25.0, final_div_factor=1e4)


def make_optimizer(opt: ml_collections.ConfigDict,
                   num_iterations: int) -> optax.GradientTransformation:
  lr = make_schedule(opt, num_iterations)
  if opt.name == "adam":
    return optax.adam(lr, b1=opt.b1, b2=opt.b2)
  if opt.name == "adamw":
    return optax.adamw(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  if opt.name == "lion":
    return optax.lion(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  return optax.chain(optax.add_decayed_weights(opt.weight_decay),
                     optax.sgd(lr, momentum=opt.b1, nesterov=True))


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict) -> TrainState:
  """A fresh train state: pure, so it can be jitted with any output sharding."""
  net = model.build(config.model.to_dict())
  variables = net.init(rng, jnp.zeros((1, data.IMAGE_SIZE, data.IMAGE_SIZE), jnp.float32))
  return TrainState.create(
      apply_fn=net.apply, params=variables["params"],
      batch_stats=variables.get("batch_stats", {}),
      tx=make_optimizer(config.optimizer, config.num_iterations))


def variables_of(state: TrainState) -> dict[str, Any]:
  """The model variables inference needs (no optimizer state)."""
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def augment(images: jax.Array, rng: jax.Array, translate: int, rotate: float = 0.0,
            scale: float = 0.0) -> jax.Array:
  """Random shifts of up to ``translate`` pixels, and optionally small rotations and zooms.

  With ``rotate`` (degrees) and ``scale`` (fraction) at 0, shifts are whole pixels, zero-filled
  (the background), and exact. Otherwise each image gets a random affine map (rotation in
  [-rotate, rotate] degrees, zoom in [1 - scale, 1 + scale], shift in [-translate, translate]
  pixels) about its centre, sampled bilinearly: what handwriting varies by.
  """
  if not (translate or rotate or scale):
    return images
  b, h, w = images.shape
  if not (rotate or scale):
    padded = jnp.pad(images, ((0, 0), (translate, translate), (translate, translate)))
    offsets = jax.random.randint(rng, (b, 2), 0, 2 * translate + 1)
    crop = lambda image, offset: jax.lax.dynamic_slice(image, (offset[0], offset[1]), (h, w))
    return jax.vmap(crop)(padded, offsets)
  k_angle, k_zoom, k_shift = jax.random.split(rng, 3)
  angle = jnp.deg2rad(jax.random.uniform(k_angle, (b,), minval=-rotate, maxval=rotate))
  zoom = jax.random.uniform(k_zoom, (b,), minval=1.0 - scale, maxval=1.0 + scale)
  shift = jax.random.uniform(k_shift, (b, 2), minval=-translate, maxval=translate)
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                            indexing="ij")
  cy, cx = (h - 1) / 2, (w - 1) / 2

  def warp(image, angle, zoom, shift):
    # Output pixel -> source pixel: the inverse of rotate-zoom-shift about the centre.
    y, x = rows - cy - shift[0], cols - cx - shift[1]
    cos, sin = jnp.cos(angle) / zoom, jnp.sin(angle) / zoom
    src_y, src_x = cos * y - sin * x + cy, sin * y + cos * x + cx
    out = jax.scipy.ndimage.map_coordinates(image.astype(jnp.float32), [src_y, src_x],
                                            order=1, mode="constant", cval=0.0)
    return jnp.clip(jnp.round(out), 0, 255).astype(images.dtype)

  return jax.vmap(warp)(images, angle, zoom, shift)


def _cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
  targets = optax.smooth_labels(jax.nn.one_hot(labels, model.NUM_CLASSES), smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def step_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The static keyword arguments of ``train_step`` that a config sets."""
  return {"translate": config.augment.translate, "rotate": config.augment.rotate,
          "scale": config.augment.scale, "label_smoothing": config.label_smoothing,
          "members": config.model.members}


@functools.partial(jax.jit, donate_argnums=0, static_argnames=(
    "translate", "rotate", "scale", "label_smoothing", "members"))
def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *,
               translate: int = 0, rotate: float = 0.0, scale: float = 0.0,
               label_smoothing: float = 0.0,
               members: int = 1) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer update on a batch of uint8 images; returns the new state and metrics.

  With ``members`` > 1 (an ensemble), each member sees its own random augmentation of the
  batch: the members then differ by more than their initialisation.
  """
  aug_rng, dropout_rng = jax.random.split(rng)
  if members == 1:
    images = augment(batch["image"], aug_rng, translate, rotate, scale)
  else:
    images = jnp.stack([augment(batch["image"], jax.random.fold_in(aug_rng, k), translate,
                                rotate, scale) for k in range(members)])
  images = images.astype(jnp.float32) / 255.0

  def loss_fn(params):
    # (members, B, 10): an ensemble's members are fitted each on its own loss (their sum, as
    # their parameters are disjoint), not on the ensemble's, so they stay independent models.
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, images, train=True,
        rngs={"dropout": dropout_rng}, mutable=["batch_stats"], method="member_logits",
        per_member=members > 1)
    loss = _cross_entropy(logits, batch["label"], label_smoothing).mean(axis=-1).sum()
    return loss, (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates.get("batch_stats", {}))
  accuracy = (jax.nn.softmax(logits).mean(axis=0).argmax(-1) == batch["label"]).mean()
  loss = loss / logits.shape[0]
  return state, {"loss": loss, "accuracy": accuracy}


@jax.jit
def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Sums of loss and correct predictions over the batch's unmasked examples."""
  images = batch["image"].astype(jnp.float32) / 255.0
  logits = state.apply_fn(variables_of(state), images, train=False)
  loss = _cross_entropy(logits, batch["label"], 0.0)
  mask = batch["mask"]
  correct = (logits.argmax(-1) == batch["label"]) & mask
  return {"loss": jnp.where(mask, loss, 0.0).sum(), "correct": correct.sum(),
          "count": mask.sum()}


@functools.partial(jax.jit, static_argnums=(1,))
def epoch_permutation(key: jax.Array, num_examples: int, epoch: jax.Array) -> jax.Array:
  return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


@functools.partial(jax.jit, static_argnames=("batch_size", "sharding"))
def draw_batch(images: jax.Array, labels: jax.Array, order: jax.Array, start: jax.Array, *,
               batch_size: int, sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
  """Gathers ``order[start:start + batch_size]`` on device, split over the data axis."""
  index = jax.lax.dynamic_slice_in_dim(order, start, batch_size)
  n = images.shape[0]
  batch = {"image": images[index % n], "label": labels[index % n].astype(jnp.int32),
           "mask": index < n}
  return jax.lax.with_sharding_constraint(batch, sharding)


def evaluate(state: TrainState, images: jax.Array, labels: jax.Array, batch_size: int,
             sharding: jax.sharding.Sharding) -> dict[str, float]:
  """Test loss and accuracy over the whole split (the last batch masked, not dropped)."""
  n = images.shape[0]
  num_batches = -(-n // batch_size)
  order = jnp.arange(num_batches * batch_size)
  totals = None
  for i in range(num_batches):
    batch = draw_batch(images, labels, order, i * batch_size, batch_size=batch_size,
                       sharding=sharding)
    sums = eval_step(state, batch)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = int(totals["count"])
  return {"test_loss": float(totals["loss"]) / count,
          "test_accuracy": float(totals["correct"]) / count}


class _StopRequest:
  """First SIGINT/SIGTERM: finish the step, save, exit. A second SIGINT: exit at once."""

  def __init__(self) -> None:
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def _handle(self, signum: int, frame: Any) -> None:
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      print("\nsecond interrupt: exiting now without saving", file=sys.stderr, flush=True)
      os._exit(128 + signum)
    self.signum = signum
    print(f"\n{signal.Signals(signum).name} received: finishing this step and saving a "
          "checkpoint (press Ctrl-C again to exit at once)", file=sys.stderr, flush=True)

  def __enter__(self) -> "_StopRequest":
    import threading
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGINT, signal.SIGTERM):
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc: Any) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def requested(self, sync_point: bool) -> bool:
    """Whether any process was asked to stop.

    Single-process: checked after every step. Multi-process: only at ``sync_point`` steps (the
    log and checkpoint steps), where all processes agree through one small all-gather, since
    a signal may reach only some of them and all must save the same step together.
    """
    if jax.process_count() == 1:
      return self.signum is not None
    if not sync_point:
      return False
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.int32(self.signum or 0))
    if self.signum is None and np.any(flags):
      self.signum = int(np.max(flags))
    return self.signum is not None


def _versions() -> dict[str, str]:
  import orbax.checkpoint as ocp
  return {"python": platform.python_version(), "jax": jax.__version__,
          "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else jax.__version__,
          "flax": flax.__version__, "optax": optax.__version__,
          "orbax-checkpoint": getattr(ocp, "__version__", "?"), "numpy": np.__version__}


def _diverged(step: int, what: str, saver: checkpoint.StepSaver, workdir: pathlib.Path) -> None:
  """Stops a run whose numbers went non-finite, keeping every checkpoint saved so far."""
  saver.finish()
  kept = saver.manager.latest_step()
  where = (f"the last good checkpoint (step {kept}) is kept in "
           f"{checkpoint.checkpoint_dir(workdir)}" if kept is not None
           else "no checkpoint had been saved yet")
  raise errors.DivergedError(f"training diverged at step {step} ({what}); {where}; lower "
                             "config.optimizer.learning_rate and start a new --workdir")


# What a resumed run must share with the checkpoint: they fix what the saved steps mean (the
# parameters' shapes, the optimizer state, the data order). Other fields may change on resume
# (e.g. num_iterations, to train longer); the change is said and recorded in final's metadata.
COMPAT_FIELDS = ("model", "optimizer", "seed", "batch_size")


def _compat(config: ml_collections.ConfigDict) -> dict[str, Any]:
  plain = json.loads(config.to_json_best_effort())
  return {name: plain[name] for name in COMPAT_FIELDS}


def _calibration(config: ml_collections.ConfigDict, variables: Any, mnist: data.Mnist,
                 num_train: int) -> dict[str, Any]:
  """The promoted model's temperature: fitted on the held-out training images when the run
  has them; else the one the config carries (measured on a held-out replica of its recipe);
  else none (1.0, said so in the metadata)."""
  if num_train < len(mnist.train_images):
    net = model.build(config.model.to_dict())
    logits = calibration.member_logits_all(net, variables, mnist.train_images[num_train:],
                                           config.eval_batch_size)
    return calibration.calibrate(
        logits, mnist.train_labels[num_train:].astype(np.int64),
        f"the last {len(mnist.train_images) - num_train} training images, held out from this run")
  if config.calibration.temperature is not None:
    return calibration.given(config.calibration.temperature, "config.calibration.temperature")
  return calibration.given(1.0, None)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | os.PathLike) -> dict[str, Any]:
  """Trains for ``config.num_iterations`` steps in ``workdir``, resuming if it can.

  Returns the summary also written to ``<workdir>/summary.json``. Raises ``MnistFlaxError``
  subclasses for everything a user can fix.
  """
  config = config_lib.validate(config)
  mesh = distributed.make_mesh()
  num_devices = mesh.size
  for name in ("batch_size", "eval_batch_size"):
    if config[name] % num_devices:
      raise errors.ConfigError(
          f"config.{name}={config[name]} does not divide over {num_devices} devices; use a "
          f"multiple of {num_devices}")
  workdir = pathlib.Path(workdir).absolute()
  with workdir_lib.claim(workdir), _StopRequest() as stop:
    log = run_log.RunLog(workdir, total_steps=config.num_iterations,
                         config=json.loads(config.to_json_best_effort()),
                         enabled=distributed.is_primary())
    try:
      return _run(config, workdir, mesh, stop, log)
    finally:
      log.close()


def _run(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh: jax.sharding.Mesh,
         stop: _StopRequest, log: run_log.RunLog) -> dict[str, Any]:
  replicated = distributed.replicated(mesh)
  shard = distributed.batch_sharding(mesh)
  mnist = data.load(data.resolve_dir(config.data.dir))
  # The last config.data.validation training images are held out: never trained on, they
  # calibrate the promoted model's probabilities.
  num_train = mnist.train_images.shape[0] - config.data.validation
  train_images = distributed.replicate(mnist.train_images[:num_train], mesh)
  train_labels = distributed.replicate(mnist.train_labels[:num_train], mesh)
  test_images = distributed.replicate(mnist.test_images, mesh)
  test_labels = distributed.replicate(mnist.test_labels, mesh)

  root = jax.random.key(config.seed)
  init = jax.jit(lambda rng: create_train_state(rng, config), out_shardings=replicated)
  abstract = jax.eval_shape(init, jax.random.fold_in(root, _INIT))
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract)
  compat = _compat(config)
  if config.data.validation:  # Absent otherwise, so runs from before it existed still resume.
    compat["validation"] = config.data.validation
  run_meta = {"compat": compat, "config": json.loads(config.to_json_best_effort()),
              "config_history": []}
  saver = checkpoint.StepSaver(workdir, log=log.note)
  manager = saver.manager
  restored = checkpoint.restore_latest(manager, abstract, run_meta, log=log.note)
  if restored is None:
    state = init(jax.random.fold_in(root, _INIT))
    log.note(f"starting a new run in {workdir} on {mesh.size} device(s), "
        f"{jax.process_count()} process(es)")
  else:
    state, saved_meta = restored
    log.note(f"resuming from checkpoint at step {int(state.step)} in {checkpoint.checkpoint_dir(workdir)}")
    history = list(saved_meta.get("config_history") or [])
    changed = checkpoint.config_changes(saved_meta.get("config") or {}, run_meta["config"])
    if changed:
      history.append({"step": int(state.step), "changed": changed})
      log.note("note: the config differs from the checkpoint's (" + "; ".join(changed)
               + "); carrying on, recorded in the final checkpoint's config_history")
    run_meta["config_history"] = history
  start = int(state.step)

  steps_per_epoch = num_train // config.batch_size
  data_key, step_key = jax.random.fold_in(root, _DATA), jax.random.fold_in(root, _STEP)
  schedule = make_schedule(config.optimizer, config.num_iterations)
  step_kwargs = step_options(config)
  evaluate_now = lambda s: evaluate(s, test_images, test_labels, config.eval_batch_size, shard)

  train_seconds, eval_seconds, images_seen = 0.0, 0.0, 0
  window_start, window_steps, rates = time.perf_counter(), 0, []
  order, order_epoch, metrics = None, -1, None
  last_eval: dict[str, float] | None = None
  loop_start = time.perf_counter()
  step = start
  log.start(start)
  while step < config.num_iterations:
    epoch, within = divmod(step, steps_per_epoch)
    if epoch != order_epoch:
      order, order_epoch = epoch_permutation(data_key, num_train, epoch), epoch
    batch = draw_batch(train_images, train_labels, order, within * config.batch_size,
                       batch_size=config.batch_size, sharding=shard)
    state, metrics = train_step(state, batch, jax.random.fold_in(step_key, step), **step_kwargs)
    step += 1
    log.step(step)
    window_steps += 1
    images_seen += config.batch_size
    at_log = step % config.log_every == 0 or step == config.num_iterations
    at_checkpoint = step % config.checkpoint_every == 0 or step == config.num_iterations
    if at_log or at_checkpoint:
      values = jax.device_get(metrics)
      if not all(math.isfinite(float(v)) for v in values.values()):
        _diverged(step, f"loss {float(values['loss'])}", saver, workdir)
      now = time.perf_counter()
      rate = window_steps * config.batch_size / (now - window_start)
      if at_log:
        rates.append(rate)
        log.train(step, {"loss": float(values["loss"]), "accuracy": float(values["accuracy"]),
                         "learning_rate": float(schedule(step - 1)), "images_per_second": rate})
    if at_checkpoint:
      t0 = time.perf_counter()
      last_eval = evaluate_now(state)
      if not math.isfinite(last_eval["test_loss"]):  # Weights broke in the last few steps.
        _diverged(step, f"test loss {last_eval['test_loss']}", saver, workdir)
      saver.save(step, state, dict(run_meta, step=step, **last_eval))
      eval_seconds += time.perf_counter() - t0
      log.evaluation(step, last_eval)
    else:
      saver.poll()  # Says "checkpoint saved" once the save under way has committed.
    if at_log or at_checkpoint:
      window_start, window_steps = time.perf_counter(), 0
    if stop.requested(sync_point=at_log or at_checkpoint):
      if not at_checkpoint:
        saver.save(step, state, dict(run_meta, step=step))
      saver.close()
      name = signal.Signals(stop.signum).name
      raise errors.Interrupted(
          f"{name}: stopped at step {step} with a checkpoint saved in "
          f"{checkpoint.checkpoint_dir(workdir)}; run the same command again to resume",
          exit_code=128 + stop.signum)
  train_seconds = time.perf_counter() - loop_start - eval_seconds
  saver.close()

  if last_eval is None:
    if start >= config.num_iterations:
      log.note(f"run already complete at step {start}; re-reporting")
    last_eval = evaluate_now(state)
  steps_run = step - start
  variables = jax.device_get(variables_of(state))
  metadata = {
      "step": int(state.step), "model": config.model.to_dict(), **last_eval,
      "config": run_meta["config"], "config_history": run_meta["config_history"],
      "data_sha256": mnist.sha256, "versions": _versions(),
      "data_dir": str(mnist.folder),  # Where evaluate and calibrate look when not told.
      "num_devices": mesh.size, "num_processes": jax.process_count(),
  }
  final = checkpoint.checkpoint_dir(workdir) / checkpoint.FINAL
  if steps_run or checkpoint.final_step(final) != metadata["step"]:
    metadata["calibration"] = _calibration(config, variables, mnist, num_train)
    log.note(calibration.describe(metadata["calibration"]))
    final = checkpoint.promote_final(workdir, variables, metadata)
  summary = {
      "step": int(state.step), **last_eval,
      "train_seconds": round(train_seconds, 3),
      "images_per_second": round(images_seen / train_seconds, 1) if steps_run else None,
      "steady_images_per_second": round(float(np.median(rates)), 1) if rates else None,
      "steps_this_run": steps_run, "final_checkpoint": str(final),
      "num_devices": mesh.size, "num_processes": jax.process_count(),
  }
  if distributed.is_primary():
    try:
      (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as e:
      raise errors.write_failure(e, workdir / "summary.json") from None
  log.note(f"final test_accuracy {last_eval['test_accuracy']:.4f} (test_loss "
      f"{last_eval['test_loss']:.4f}) at step {int(state.step)}; model promoted to {final}")
  return summary
