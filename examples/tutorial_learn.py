"""Learn: a Fourier neural operator for viscous Burgers

Train a 1-D FNO (Li et al. 2021) to map an initial field u(x, 0) to the solution u(x, 1) of
viscous Burgers, u_t + u u_x = nu u_xx on the periodic unit interval. The training pairs are
simulated on the fly (`jaxsci.data.burgers_dataset`: Gaussian-random-field initial data,
ETDRK4), the network is `jaxsci.nn.FNO`, the loss `jaxsci.losses.RelativeL2Loss` (the FNO
paper's metric) and the loop `jaxsci.train.fit` (optax, minibatches, validation, EMA and
resumable checkpoints when asked).

Run it as a script: `python examples/tutorial_learn.py`. The sizes here are small so that
the page builds in seconds; `configs/burgers_fno.yaml` is the full experiment.
"""

# %%
# ## Data
# Pairs (u(0), u(1)) on a 128-point grid; the network takes channels first, so each field
# gets a channel axis of size 1.
import jax
import matplotlib.pyplot as plt
import numpy as np
import optax

from jaxsci.data import burgers_dataset
from jaxsci.losses import RelativeL2Loss, relative_l2
from jaxsci.nn import FNO
from jaxsci.train import fit

n_points = 128
u0, u1 = burgers_dataset(jax.random.key(0), 240, num_points=n_points)
x_train, y_train = u0[:200, None], u1[:200, None]  # (200, 1, 128)
x_test, y_test = u0[200:, None], u1[200:, None]
print("train inputs", x_train.shape, "targets", y_train.shape)

# %%
# ## Model and training
# Four Fourier layers of width 32 keeping 16 modes. `fit` takes the model, a loss of the
# form `loss(model, batch, *, key) -> (value, aux)`, the data as a pytree with a leading
# example axis and an optax optimizer; it returns the trained model and a history dict.
model = FNO(1, 1, 1, width=32, modes=16, depth=4, key=jax.random.key(1))
epochs, batch_size = 20, 20
steps = epochs * (x_train.shape[0] // batch_size)
schedule = optax.cosine_decay_schedule(3e-3, steps)
model, history = fit(
    model,
    RelativeL2Loss(),
    (x_train, y_train),
    optimizer=optax.adam(schedule),
    key=jax.random.key(2),
    batch_size=batch_size,
    epochs=epochs,
    val_data=(x_test, y_test),
    progress=False,
)
pred = jax.vmap(model)(x_test)
test_error = float(np.mean(jax.vmap(relative_l2)(pred, y_test)))
print(f"test relative L2 error: {test_error:.4f}")
print("history keys:", sorted(history))

# %%
# ## Results
# The training and validation losses, and two test fields: input, target and prediction.
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy(history["loss"], label="train (per step)", alpha=0.6)
ax.semilogy(history["eval_step"], history["val_loss"], "o-", label="validation (per epoch)")
ax.set_xlabel("step")
ax.set_ylabel("relative L2")
ax.legend()

xs = np.arange(n_points) / n_points
fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for ax, i in zip(axes, (0, 1), strict=True):
    ax.plot(xs, x_test[i, 0], color="0.6", label="u(x, 0)")
    ax.plot(xs, y_test[i, 0], "k", lw=2, label="u(x, 1) solver")
    ax.plot(xs, pred[i, 0], "C3--", lw=2, label="u(x, 1) FNO")
    ax.set_xlabel("x")
axes[0].legend()
fig.tight_layout()
