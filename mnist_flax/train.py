"""Training: pure state creation, jitted steps, and the loop that checkpoints and evaluates.

    from mnist_flax import train
    summary = train.train_and_evaluate(config, workdir)   # what `python -m mnist_flax.main` does

The pieces are small pure functions in the style of the Flax examples:

* ``create_train_state(rng, config)``: a fresh, immutable ``TrainState``.
* ``train_step(state, batch, rng) -> (state, metrics)``: one jitted update, state donated.
* ``eval_step(state, batch) -> sums``: jitted loss and accuracy sums over a masked batch.
* ``draw_batch``: jitted gather of a batch from the dataset kept in device memory.
* ``setup(config) -> Setup``: the device data, keys, initial state and ``Setup.step(state, n)``
  (update ``n`` with its batch and randomness); the loop here and the benchmark both train
  through it. Augmentation is ``mnist_flax.augment``, Ctrl-C handling ``mnist_flax.stop``.

Every random choice is derived from ``(config.seed, step)`` with ``jax.random.fold_in``: data
order comes from a per-epoch permutation, augmentation and dropout from the step number. A run
killed at any point and resumed from a checkpoint therefore retraces the uninterrupted run and
ends with bit-identical parameters (same config, same machine).

Why it runs as it does (measured side by side on a 2-core CPU; the model's own shape is
explained in ``mnist_flax.model``): the dataset stays on the device as uint8 and each batch is
gathered there by ``draw_batch``; steps are a Python loop of jitted calls, as a ``lax.scan`` over
steps ran 4x slower on XLA:CPU; no XLA flag helped by more than noise. Compilation is a first
run's largest cost, so JAX's persistent compilation cache is on (``mnist_flax.cache``). With
these, ``configs/speedrun.py`` reaches 99.18% in 5.4 s end to end against the PyTorch peer's
13.6 s (``../shared/bench``), 2.2x its training images/s (``python -m mnist_flax.tools.benchmark``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
import signal
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from mnist_flax import augment, checkpoint, config as config_lib, data, distributed, errors
from mnist_flax import extra_data
from mnist_flax import model, optimizer, promotion, run_log, stop as stop_lib
from mnist_flax import workdir as workdir_lib

# Distinct streams from the one seed, so adding a random choice never shifts another.
_INIT, _DATA, _STEP = 0, 1, 2


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the model's batch statistics (an empty dict without batch norm)."""

  batch_stats: Any = flax.struct.field(default_factory=dict)


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict) -> TrainState:
  """A fresh train state: pure, so it can be jitted with any output sharding."""
  net = model.build(config.model.to_dict())
  variables = net.init(rng, jnp.zeros((1, data.IMAGE_SIZE, data.IMAGE_SIZE), jnp.float32))
  return TrainState.create(
      apply_fn=net.apply, params=variables["params"],
      batch_stats=variables.get("batch_stats", {}),
      tx=optimizer.make_optimizer(config.optimizer, config.num_iterations))


def variables_of(state: TrainState) -> dict[str, Any]:
  """The model variables inference needs (no optimizer state)."""
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def _cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
  targets = optax.smooth_labels(jax.nn.one_hot(labels, model.NUM_CLASSES), smoothing)
  # A non-digit (extra_data) is taught as "unsure": equally likely any digit.
  targets = jnp.where((labels == extra_data.NOT_A_DIGIT)[..., None], 0.1, targets)
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
    images = augment.augment(batch["image"], aug_rng, translate, rotate, scale)
  else:
    images = jnp.stack([augment.augment(batch["image"], jax.random.fold_in(aug_rng, k),
                                        translate, rotate, scale) for k in range(members)])
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
  accuracy = ((jax.nn.softmax(logits).mean(axis=0).argmax(-1) == batch["label"]).sum()  # of digits
              / jnp.maximum((batch["label"] != extra_data.NOT_A_DIGIT).sum(), 1))
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


@dataclasses.dataclass
class Setup:
  """What a run trains from, built once by ``setup``: the loop and the benchmark share it.

  ``init()`` makes the fresh state (``abstract`` is its shape, to restore a checkpoint onto);
  ``step(state, n)`` makes update ``n`` (0-based) with the batch and randomness that step ``n``
  of every run with this config uses, so a resumed run retraces an uninterrupted one.
  """

  config: ml_collections.ConfigDict
  mesh: jax.sharding.Mesh
  shard: jax.sharding.Sharding  # batches: split over the mesh's data axis
  mnist: data.Mnist
  num_train: int  # the first num_train training images; the rest are held out
  train_images: jax.Array  # those, then extra_data's images (if the config asks for them)
  train_labels: jax.Array
  test_images: jax.Array
  test_labels: jax.Array
  init: Callable[[], TrainState]
  abstract: Any
  data_key: jax.Array
  step_key: jax.Array
  step_kwargs: dict[str, Any]  # train_step's static options (step_options), read once
  _order: tuple[int, jax.Array | None] = (-1, None)  # the permutation of the epoch in use

  @property
  def steps_per_epoch(self) -> int:
    return self.train_images.shape[0] // self.config.batch_size

  def step(self, state: TrainState, step: int) -> tuple[TrainState, dict[str, jax.Array]]:
    """Update ``step``: no sync with the host, so dispatch overlaps the computation."""
    epoch, within = divmod(step, self.steps_per_epoch)
    if epoch != self._order[0]:
      self._order = (epoch, epoch_permutation(self.data_key, self.train_images.shape[0], epoch))
    bs = self.config.batch_size
    batch = draw_batch(self.train_images, self.train_labels, self._order[1], within * bs,
                       batch_size=bs, sharding=self.shard)
    return train_step(state, batch, jax.random.fold_in(self.step_key, step), **self.step_kwargs)

  def evaluate(self, state: TrainState) -> dict[str, float]:
    return evaluate(state, self.test_images, self.test_labels, self.config.eval_batch_size,
                    self.shard)


def setup(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None,
          mnist: data.Mnist | None = None, test_images: int | None = None) -> Setup:
  """The data on device, keys and initial state of a run of ``config`` (``mnist``: loaded
  from ``config.data.dir`` when not given; ``test_images``: evaluate on that many only)."""
  mesh = mesh or distributed.make_mesh()
  replicated = distributed.replicated(mesh)
  mnist = mnist or data.load(data.resolve_dir(config.data.dir))
  # The last config.data.validation training images are held out: never trained on, they
  # calibrate the promoted model's probabilities.
  num_train = mnist.train_images.shape[0] - config.data.validation
  root = jax.random.key(config.seed)
  init = jax.jit(lambda rng: create_train_state(rng, config), out_shardings=replicated)
  abstract = jax.eval_shape(init, jax.random.fold_in(root, _INIT))
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract)
  put = lambda x: distributed.replicate(x, mesh)
  extra_images, extra_labels = extra_data.for_config(config)
  return Setup(
      config=config, mesh=mesh, shard=distributed.batch_sharding(mesh), mnist=mnist,
      num_train=num_train,
      train_images=put(np.concatenate([mnist.train_images[:num_train], extra_images])),
      train_labels=put(np.concatenate([mnist.train_labels[:num_train], extra_labels])),
      test_images=put(mnist.test_images[:test_images]),
      test_labels=put(mnist.test_labels[:test_images]),
      init=lambda: init(jax.random.fold_in(root, _INIT)), abstract=abstract,
      data_key=jax.random.fold_in(root, _DATA), step_key=jax.random.fold_in(root, _STEP),
      step_kwargs=step_options(config))


def _diverged(step: int, what: str, saver: checkpoint.StepSaver, workdir: pathlib.Path) -> None:
  """Stops a run whose numbers went non-finite, keeping every checkpoint saved so far."""
  saver.finish()
  kept = saver.manager.latest_step()
  where = (f"the last good checkpoint (step {kept}) is kept in "
           f"{checkpoint.checkpoint_dir(workdir)}" if kept is not None
           else "no checkpoint had been saved yet")
  raise errors.DivergedError(f"training diverged at step {step} ({what}); {where}; lower "
                             "config.optimizer.learning_rate and start a new --workdir")


def _kept(final: pathlib.Path) -> str:
  """What a re-report says of the ``final`` it leaves alone."""
  held = checkpoint.final_step(final)
  what = (f"a step-{held} model" if held is not None else
          "which fails its checks (python -m mnist_flax.tools.reset restores the shipped one)")
  return (f"not promoted (a re-report never replaces final): {final}, {what}, is left as it "
          "is; delete it and run again to promote this run's model")


# What a resumed run must share with the checkpoint: they fix what the saved steps mean (the
# parameters' shapes, the optimizer state, the data order). Other fields may change on resume
# (e.g. num_iterations, to train longer); the change is said and recorded in final's metadata.
COMPAT_FIELDS = ("model", "optimizer", "seed", "batch_size")


def _compat(config: ml_collections.ConfigDict) -> dict[str, Any]:
  plain = json.loads(config.to_json_best_effort())
  return {name: plain[name] for name in COMPAT_FIELDS}


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
  with workdir_lib.claim(workdir), stop_lib.StopRequest() as stop:
    log = run_log.RunLog(workdir, total_steps=config.num_iterations,
                         config=json.loads(config.to_json_best_effort()),
                         enabled=distributed.is_primary())
    try:
      return _run(config, workdir, mesh, stop, log)
    finally:
      log.close()


def _restore(s: Setup, saver: checkpoint.StepSaver, workdir: pathlib.Path,
             log: run_log.RunLog) -> tuple[TrainState, dict[str, Any]]:
  """The latest intact step checkpoint's state (else a fresh one) and the run's metadata."""
  config = s.config
  compat = _compat(config)
  if config.data.validation:  # Absent otherwise, so runs from before it existed still resume.
    compat["validation"] = config.data.validation
  compat.update(extra_data.compat(config))  # Likewise absent when there are none.
  run_meta = {"compat": compat, "config": json.loads(config.to_json_best_effort()),
              "config_history": []}
  restored = checkpoint.restore_latest(saver.manager, s.abstract, run_meta, log=log.note)
  if restored is None:
    log.note(f"starting a new run in {workdir} on {s.mesh.size} device(s), "
             f"{jax.process_count()} process(es)")
    return s.init(), run_meta
  state, saved_meta = restored
  log.note(f"resuming from checkpoint at step {int(state.step)} in "
           f"{checkpoint.checkpoint_dir(workdir)}")
  history = list(saved_meta.get("config_history") or [])
  changed = checkpoint.config_changes(saved_meta.get("config") or {}, run_meta["config"])
  if changed:
    history.append({"step": int(state.step), "changed": changed})
    log.note("note: the config differs from the checkpoint's (" + "; ".join(changed)
             + "); carrying on, recorded in the final checkpoint's config_history")
  run_meta["config_history"] = history
  return state, run_meta


def _run(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh: jax.sharding.Mesh,
         stop: stop_lib.StopRequest, log: run_log.RunLog) -> dict[str, Any]:
  s = setup(config, mesh)
  saver = checkpoint.StepSaver(workdir, log=log.note)
  state, run_meta = _restore(s, saver, workdir, log)
  start = int(state.step)
  schedule = optimizer.make_schedule(config.optimizer, config.num_iterations)

  train_seconds, eval_seconds, images_seen = 0.0, 0.0, 0
  window_start, window_steps, rates = time.perf_counter(), 0, []
  metrics = None
  last_eval: dict[str, float] | None = None
  loop_start = time.perf_counter()
  step = start
  log.start(start)
  while step < config.num_iterations:
    state, metrics = s.step(state, step)
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
      last_eval = s.evaluate(state)
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
    log.note(f"run already complete at step {start}; re-reporting")
    last_eval = s.evaluate(state)
  steps_run = step - start
  final = checkpoint.checkpoint_dir(workdir) / checkpoint.FINAL
  # A re-report never replaces final, intact or not: it may hold a model put back since (the
  # shipped one, by `git checkout checkpoints/final`, which also leaves the run's extra files
  # in it). Only a run whose promotion never happened (killed between its last checkpoint and
  # the promotion, in a workdir without a final) promotes on re-report.
  promoted = bool(steps_run) or not os.path.lexists(final)
  if promoted:
    final = promotion.promote(workdir, config, jax.device_get(variables_of(state)),
                              step=int(state.step), evaluation=last_eval, run_meta=run_meta,
                              mnist=s.mnist, num_train=s.num_train, log=log.note)
  summary = {
      "step": int(state.step), **last_eval,
      "train_seconds": round(train_seconds, 3),
      "images_per_second": round(images_seen / train_seconds, 1) if steps_run else None,
      "steady_images_per_second": round(float(np.median(rates)), 1) if rates else None,
      "steps_this_run": steps_run, "final_checkpoint": str(final), "promoted": promoted,
      "num_devices": mesh.size, "num_processes": jax.process_count(),
  }
  if distributed.is_primary():
    try:
      (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as e:
      raise errors.write_failure(e, workdir / "summary.json") from None
  where = f"model promoted to {final}" if promoted else _kept(final)
  log.note(f"final test_accuracy {last_eval['test_accuracy']:.4f} (test_loss "
           f"{last_eval['test_loss']:.4f}) at step {int(state.step)}; {where}")
  return summary
