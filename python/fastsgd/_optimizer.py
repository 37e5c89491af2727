"""The optimizer's books: learning-rate schedule and momentum velocities.

The update rule itself is compiled (csrc ``fsg_sgd_update``); it is
scikit-learn's, not PyTorch's::

    v <- momentum * v - lr * g
    w <- w + (momentum * v - lr * g)   if nesterov
    w <- w + v                         otherwise

with ``g = (dL/dw + alpha * w) / m`` and ``m`` the batch's row count (or
total sample weight).  The learning rate changes only between epochs, which
is what lets the engine run a whole epoch at one scalar rate.

Like scikit-learn's optimizer since #19626, this object never holds the
parameters themselves, only the velocities (one slab, the parameters'
layout), so a pickled-and-loaded model keeps training the right arrays.
"""

from fastsgd._params import aligned_zeros


class SGDOptimizer:
    """Momentum SGD state, scikit-learn's ``SGDOptimizer`` over a flat slab.

    Parameters
    ----------
    n_params : int
        Size of the parameter slab.
    dtype : numpy dtype
        The model's dtype; velocities use it too.
    learning_rate_init : float
    lr_schedule : {'constant', 'invscaling', 'adaptive'}
    momentum : float
    nesterov : bool
    power_t : float
    """

    def __init__(self, n_params, dtype, learning_rate_init, lr_schedule, momentum,
                 nesterov, power_t):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = aligned_zeros(n_params, dtype)

    def iteration_ends(self, time_step):
        """End-of-epoch schedule hook; ``time_step`` is the number of
        training samples seen so far (the estimator's ``t_``)."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = (
                float(self.learning_rate_init) / (time_step + 1) ** self.power_t
            )

    def trigger_stopping(self, msg, verbose):
        """Called when the no-improvement counter runs out.  Returns True to
        stop; the adaptive schedule instead divides the rate by 5, until it
        falls to 1e-6."""
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False
