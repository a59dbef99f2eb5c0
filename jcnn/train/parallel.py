"""Data-parallel training over every device and host: ``jit``, ``shard_map`` or ``pmap``.

The same train step (`jcnn.train.step.make_train_step`) is spread over the
devices of a one-axis mesh ``Mesh(devices, ("data",))`` in one of three ways
(``config.parallel``); all three compute what one device computes on the
global batch, BatchNorm statistics included:

- ``"jit"`` (the default): `jax.jit` of the single-device step with the batch
  sharded ``P("data")`` and the state replicated ``P()``. The program is the
  one-device program; XLA's SPMD partitioner splits it and inserts the
  all-reduces itself, for the gradients and for BatchNorm's batch sums alike,
  so the statistics are those of the global batch with no code for it.
- ``"shard_map"``: `jax.shard_map` of an explicit per-device program. Each
  device sees its shard; the gradients and the metrics are averaged with
  ``lax.pmean`` and every BatchNorm reduces its sums and counts over the
  ``"data"`` axis (``bn_axis_name``, see `with_bn_axis`). It runs with
  ``check_vma=False``: the step averages the gradients itself, as under pmap
  (with ``check_vma=True`` JAX already sums the gradients of the replicated
  parameters over the axis, and the ``pmean`` would leave them ``n`` times
  too large).
- ``"pmap"``: the classic `jax.pmap` step with ``axis_name="data"``, the same
  per-device program as ``"shard_map"``. The state goes in and comes out
  unmapped (``in_axes``/``out_axes`` None), one replicated array per leaf
  rather than the stacked per-device copy of ``flax.jax_utils.replicate``.
  Since JAX 0.8 `jax.pmap` is itself implemented as `jax.jit` of a
  `jax.shard_map` (``check_vma=False``) over a mesh of the mapped devices.

Per-example randomness stays that of one device: the augmentation keys are
split for the global batch and each device takes its slice
(`jcnn.train.step.augment_shard`). Dropout masks are the exception: under
``shard_map``/``pmap`` each device draws its own from the step's dropout key
folded with its index, so they are independent draws, not the bits one
device would draw (``jit`` draws exactly those, threefry being partitionable).

**Multi-host.** `initialize_distributed` calls `jax.distributed.initialize`
when ``config.distributed`` is True or ``JAX_COORDINATOR_ADDRESS`` is set. The
mesh then spans the devices of every process, grouped by process; each
process computes only its rows of every global batch
(`jcnn.data.batch_indices` with its ``process_index``), gathers and augments
only those on its own devices, and the global batch is assembled without
copies by `jax.make_array_from_process_local_data`. The dataset itself is
held replicated on every device, so only indices cross the host boundary.

**Several steps per call.** `DataParallel.train_chunk` compiles ``k`` steps
into one program (``config.steps_per_call``) for ``"jit"`` and
``"shard_map"``: each device gathers its rows of every batch from its copy
of the dataset inside the program, so the host sends only the ``(k, batch)``
row indices. ``"pmap"`` runs one step per call.

**One device.** With ``"jit"`` on a single device of a single process the
plan is the plain single-device path (`jax.jit`, no shardings): nothing
changes for the default run.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jcnn import data as jdata
from jcnn.configs._base import PARALLEL_MODES
from jcnn.train.step import make_eval_step, make_train_step

MODES = PARALLEL_MODES
AXIS = "data"

# Launchers (tpu/*.sh, SLURM scripts...) export these; JAX itself reads only the first.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def initialize_distributed(distributed: bool = False) -> bool:
    """Starts multi-process JAX when asked; returns whether it is running.

    Asked means `distributed` is True or ``JAX_COORDINATOR_ADDRESS`` is set.
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (when set) give the process
    count and this process's id; where they are missing,
    `jax.distributed.initialize` detects them (Cloud TPU VMs, SLURM, Open MPI,
    Kubernetes). Under SLURM and Open MPI on GPUs it also restricts each
    process to one GPU, the one numbered by its rank on the node
    (``SLURM_LOCALID``, ``OMPI_COMM_WORLD_LOCAL_RANK``): launch one process
    per GPU there, or set ``JAX_LOCAL_DEVICE_IDS`` (e.g. ``0,1,2,3``) for one
    process driving several (tpu/README.md). Must run before the first JAX
    computation; a no-op when already initialised.
    """
    env = os.environ
    if not (distributed or env.get(COORDINATOR_ENV)):
        return False
    if jax.distributed.is_initialized():
        return True
    kwargs = {}
    for name, key in (
        (NUM_PROCESSES_ENV, "num_processes"),
        (PROCESS_ID_ENV, "process_id"),
    ):
        if env.get(name):
            try:
                kwargs[key] = int(env[name])
            except ValueError:
                raise ValueError(
                    f"initialize_distributed: environment variable {name} must be an int, "
                    f"got {env[name]!r}."
                ) from None
    jax.distributed.initialize(**kwargs)
    return True


def data_mesh() -> Mesh:
    """A one-axis ``("data",)`` mesh over every device, grouped by process.

    The grouping is `jax.pmap`'s multi-process order, so process ``p`` holds a
    contiguous block of every batch (the block `jcnn.data.batch_indices`
    gives it).
    """
    devices = [d for p in range(jax.process_count()) for d in jax.local_devices(process_index=p)]
    return Mesh(np.array(devices), (AXIS,))


def check_batch_size(batch_size: int, num_devices: int, fn: str = "parallel") -> int:
    """The per-device batch ``batch_size // num_devices``; ValueError if it does not divide."""
    if batch_size % num_devices:
        raise ValueError(
            f"{fn}: the global batch size {batch_size} is not divisible by the "
            f"{num_devices} devices; use a multiple of {num_devices} "
            f"(e.g. {max(1, round(batch_size / num_devices)) * num_devices})."
        )
    return batch_size // num_devices


def with_bn_axis(model, axis_name: str | None):
    """`model` with every BatchNorm reducing its batch statistics over `axis_name`.

    Works for the `jcnn.models` zoo (their `Parts` carry ``bn_axis_name``). A
    model without BatchNorm is returned as it is; another model raises
    ValueError, since its BatchNorm would silently use per-device statistics.
    """
    parts = getattr(model, "parts", None)
    if parts is None or not hasattr(parts, "bn_axis_name"):
        raise ValueError(
            f"with_bn_axis: {type(model).__name__} has no `parts.bn_axis_name`, so its "
            "BatchNorm layers cannot be told the device axis; use a jcnn.models model, "
            "parallel='jit', or give its BatchNorm axis_name yourself."
        )
    if parts.norm != "batch" or parts.bn_axis_name == axis_name:
        return model
    return model.clone(parts=dataclasses.replace(parts, bn_axis_name=axis_name))


class DataParallel:
    """How a run places its data and state and compiles its steps (see the module doc).

    Args:
      mode: one of `MODES`.
      mesh: the mesh to use; default `data_mesh` (every device).
    """

    def __init__(self, mode: str = "jit", mesh: Mesh | None = None):
        if mode not in MODES:
            raise ValueError(f"DataParallel: `mode` must be one of {MODES}, got {mode!r}.")
        self.mode = mode
        self.mesh = data_mesh() if mesh is None else mesh
        if self.mesh.axis_names != (AXIS,):
            raise ValueError(
                f"DataParallel: `mesh` must have the one axis {(AXIS,)}, "
                f"got {self.mesh.axis_names}."
            )
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P(AXIS))
        # The plain single-device path: no shardings, nothing to partition.
        self.trivial = mode == "jit" and self.mesh.size == 1 and jax.process_count() == 1
        self._gather = {}

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def __repr__(self) -> str:
        return f"DataParallel(mode={self.mode!r}, devices={self.num_devices})"

    # --- placement ---

    def put_data(self, images, labels) -> jdata.DeviceData:
        """Host arrays, the same in every process, held whole on every device."""
        if self.trivial:
            return jdata.to_device(images, labels)
        return jdata.DeviceData(
            *(
                jax.make_array_from_process_local_data(self.replicated, np.asarray(a))
                for a in (images, labels)
            )
        )

    def create(self, fn):
        """``fn()`` (e.g. the initial state), computed replicated on every device."""
        return fn() if self.trivial else jax.jit(fn, out_shardings=self.replicated)()

    def state_like(self, abstract):
        """`abstract` (ShapeDtypeStructs) placed on this plan's devices: a restore target.

        The sharding is always given: without one, Orbax would place the arrays
        as they were saved, which fails when the device count changed.
        """
        sharding = (
            jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            if self.trivial
            else self.replicated
        )
        return jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract
        )

    def global_array(self, local, sharding=None):
        """A global array from this process's rows `local` (sharded ``P("data")``)."""
        sharding = self.sharded if sharding is None else sharding
        local = np.asarray(local)
        shape = (local.shape[0] * jax.process_count(), *local.shape[1:])
        return jax.make_array_from_process_local_data(sharding, local, shape)

    # --- batches ---

    def check_batch_size(self, batch_size: int, fn: str = "fit") -> int:
        """The per-device batch; ValueError when the devices do not divide `batch_size`."""
        return check_batch_size(batch_size, self.num_devices, fn)

    def eval_batch_size(self, batch_size: int) -> int:
        """`batch_size` rounded up to a multiple of the device count (padding is masked)."""
        return -(-batch_size // self.num_devices) * self.num_devices

    def take(self, data: jdata.DeviceData, local_indices, *, stacked: bool = False):
        """``(images, labels)`` of a global batch, from this process's `local_indices`.

        Each device gathers its own rows from its copy of `data`; the result is
        sharded ``P("data")``, shaped ``(devices, per_device, ...)`` when
        `stacked` (the layout pmap maps over).
        """
        if self.trivial:
            return jdata.take(data, local_indices)
        if stacked not in self._gather:

            def gather(data, idx):
                out = (data.images[idx], data.labels[idx])
                return jax.tree.map(lambda a: a[None], out) if stacked else out

            self._gather[stacked] = jax.jit(
                jax.shard_map(gather, mesh=self.mesh, in_specs=(P(), P(AXIS)), out_specs=P(AXIS))
            )
        return self._gather[stacked](data, self.global_array(local_indices))

    def train_batch(self, data: jdata.DeviceData, local_indices):
        """`take` in the layout this mode's train step expects."""
        return self.take(data, local_indices, stacked=self.mode == "pmap")

    # --- steps ---

    def train_step(self, model, tx, **step_kwargs):
        """The compiled ``step(state, images, labels) -> (state, metrics)``.

        `step_kwargs` are those of `make_train_step` (but `axis_name`). The
        state argument is donated; the returned state and metrics are
        replicated.
        """
        if self.trivial or self.mode == "jit":
            step = make_train_step(model, tx, **step_kwargs)
            if self.trivial:
                return jax.jit(step, donate_argnums=0)
            shardings = (self.replicated, self.sharded, self.sharded)
            return jax.jit(
                step,
                in_shardings=shardings,
                out_shardings=self.replicated,
                donate_argnums=0,
            )
        step = make_train_step(with_bn_axis(model, AXIS), tx, axis_name=AXIS, **step_kwargs)
        if self.mode == "shard_map":
            return jax.jit(
                jax.shard_map(
                    step,
                    mesh=self.mesh,
                    in_specs=(P(), P(AXIS), P(AXIS)),
                    out_specs=P(),
                    check_vma=False,
                ),
                donate_argnums=0,
            )
        pmapped = jax.pmap(
            step,
            axis_name=AXIS,
            in_axes=(None, 0, 0),
            out_axes=None,
            donate_argnums=0,
            devices=list(self.mesh.devices.flat),
        )
        if jax.process_count() == 1:
            return pmapped

        def multi_process(state, images, labels):
            # Multi-process pmap returns process-local arrays; keep the state global.
            out = pmapped(state, images, labels)
            return multihost_utils.host_local_array_to_global_array(out, self.mesh, P())

        return multi_process

    def train_chunk(self, model, tx, k: int, **step_kwargs):
        """The compiled ``chunk(state, images, labels, rows) -> (state, metrics)``.

        `k` train steps in one XLA program: step ``i`` trains on the global
        batch whose rows in the dataset ``(images, labels)`` (as `put_data`
        placed it) are this process's ``rows[i]``; `rows` is ``(k, local
        batch)``. The metrics come back stacked along a leading axis of `k`;
        the state is donated. The steps are unrolled (``lax.scan(...,
        unroll=True)``), not looped: on XLA:CPU a convolution inside a while
        loop runs ~20x slower. ``jit`` and ``shard_map`` compile the same
        per-step program as `train_step` inside the chunk (the batch gathered
        on the devices that hold it); ``pmap`` has no chunk (ValueError).

        It computes the same function as `k` calls of `train_step`, but not
        always bit for bit: XLA may round a reduction differently in the
        larger program.
        """
        if self.mode == "pmap" and not self.trivial:
            raise ValueError(
                "DataParallel.train_chunk: several steps per call need parallel='jit' or "
                "'shard_map'; with 'pmap' each call runs one step (steps_per_call=1)."
            )
        if self.trivial or self.mode == "jit":
            step = make_train_step(model, tx, **step_kwargs)
        else:
            step = make_train_step(with_bn_axis(model, AXIS), tx, axis_name=AXIS, **step_kwargs)

        def chunk(state, images, labels, rows):
            def body(state, idx):
                return step(state, images[idx], labels[idx])

            return jax.lax.scan(body, state, rows, unroll=True)

        if self.trivial:
            return jax.jit(chunk, donate_argnums=0)

        def by_columns(state, images, labels, columns):
            # `columns` is (batch, k): its batch axis is the sharded one (`global_array`).
            return chunk(state, images, labels, columns.T)

        if self.mode == "jit":
            replicated = self.replicated
            compiled = jax.jit(
                by_columns,
                in_shardings=(replicated, replicated, replicated, self.sharded),
                out_shardings=replicated,
                donate_argnums=0,
            )
        else:
            compiled = jax.jit(
                jax.shard_map(
                    by_columns,
                    mesh=self.mesh,
                    in_specs=(P(), P(), P(), P(AXIS)),
                    out_specs=P(),
                    check_vma=False,
                ),
                donate_argnums=0,
            )

        def call(state, images, labels, rows):
            return compiled(state, images, labels, self.global_array(np.asarray(rows).T))

        return call

    def eval_step(self, model, **eval_kwargs):
        """The compiled ``eval_step(state, images, labels, mask) -> sums`` (see `make_eval_step`).

        Evaluation has no cross-device statistics, so every mode evaluates
        with ``jit`` over the flat sharded batch (`take`); the sums come back
        replicated.
        """
        step = make_eval_step(model, **eval_kwargs)
        if self.trivial:
            return jax.jit(step)
        return jax.jit(
            step,
            in_shardings=(self.replicated, self.sharded, self.sharded, self.sharded),
            out_shardings=self.replicated,
        )
