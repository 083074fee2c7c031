"""Training: losses, the pure train step (full or context-frozen), the loop, drift
monitor and quality guard. The loop is `msr_jax.train.loop.train_loop` (imported from its
module so that using the step does not pull in checkpointing and data loading)."""

from msr_jax.train.batch import Batch
from msr_jax.train.losses import masked_cross_entropy, token_nll, weighted_nll_sums
from msr_jax.train.objectives import MODES, loss_sums
from msr_jax.train.state import TrainState, init_state
from msr_jax.train.step import jit_train_step, make_train_step

__all__ = ["Batch", "masked_cross_entropy", "token_nll",
           "weighted_nll_sums", "MODES", "loss_sums", "TrainState", "init_state",
           "jit_train_step", "make_train_step"]
