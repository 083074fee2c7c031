"""Optimizers: APOLLO and APOLLO-Mini as optax transformations, a registry by name."""

from msr_jax.optim.alias import apollo
from msr_jax.optim.alias import apollo_mini
from msr_jax.optim.apollo_scaling import gaussian_projection
from msr_jax.optim.apollo_scaling import projection_key
from msr_jax.optim.apollo_scaling import scale_by_apollo
from msr_jax.optim.apollo_scaling import ScaleByApolloState
from msr_jax.optim.labels import default_label_fn
from msr_jax.optim.labels import path_label_fn
from msr_jax.param_paths import path_to_str
from msr_jax.optim.learning_rate import get_learning_rate
from msr_jax.optim.learning_rate import refresh_hyperparams
from msr_jax.optim.learning_rate import scale_learning_rate
from msr_jax.optim.learning_rate import set_learning_rate
from msr_jax.optim.registry import make_optimizer
from msr_jax.optim.registry import make_schedule
from msr_jax.optim.registry import OptimizerConfigError
from msr_jax.optim.registry import register_optimizer
from msr_jax.optim.registry import registered_optimizers
from msr_jax.optim.state_bytes import optimizer_state_bytes
