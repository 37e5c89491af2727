"""The frameworks the bench times, each behind the same small interface:
setup (outside the timer), run (timed), after (checks, outside the timer).
Heavy imports happen inside the methods."""

import math
import time

from ._case import MOMENTUM, N_CLASSES


class FastsgdRunner:
    name = "fastsgd"

    def __init__(self, hidden, alpha, seed):
        self.hidden, self.alpha, self.seed = hidden, alpha, seed

    def setup(self, X, y, batch_size, lr, epochs, threads):
        from fastsgd import MLPClassifier
        return MLPClassifier(hidden_layer_sizes=self.hidden, batch_size=batch_size,
                             learning_rate_init=lr, max_iter=epochs, alpha=self.alpha,
                             momentum=MOMENTUM, nesterovs_momentum=True, tol=0.0,
                             n_iter_no_change=math.inf, shuffle=True,
                             random_state=self.seed, n_threads=threads)

    def run(self, est, X, y):
        est.fit(X, y)

    def after(self, est, X, y):
        """Outside the timer: the epoch losses the fit recorded, and the
        cross-entropy of the trained model on the data (no L2 term), which
        is defined the same way for every framework."""
        from sklearn.metrics import log_loss
        curve = [float(v) for v in getattr(est, "loss_curve_", [])]
        proba = est.predict_proba(X)
        return {"epoch_loss_curve": curve,
                "final_loss": float(log_loss(y, proba, labels=est.classes_))}


class SklearnMLPRunner(FastsgdRunner):
    name = "scikit-learn"

    def setup(self, X, y, batch_size, lr, epochs, threads):
        from sklearn.neural_network import MLPClassifier
        return MLPClassifier(solver="sgd", hidden_layer_sizes=self.hidden,
                             batch_size=batch_size, learning_rate_init=lr, max_iter=epochs,
                             alpha=self.alpha, momentum=MOMENTUM, nesterovs_momentum=True,
                             tol=0.0, n_iter_no_change=math.inf, shuffle=True,
                             random_state=self.seed)


class SGDClassifierRunner(FastsgdRunner):
    """scikit-learn's linear SGDClassifier: one epoch (max_iter=1, tol=None)
    of log-loss SGD, constant learning rate, one-vs-rest over the classes."""
    name = "SGDClassifier"

    def setup(self, X, y, batch_size, lr, epochs, threads):
        from sklearn.linear_model import SGDClassifier
        return SGDClassifier(loss="log_loss", penalty="l2", alpha=self.alpha,
                             learning_rate="constant", eta0=lr, max_iter=epochs, tol=None,
                             shuffle=True, random_state=self.seed)


class TorchRunner:
    """PyTorch eager, the honest fast loop: no DataLoader; per epoch one
    ``randperm``, then per batch slice the permutation, index X and y,
    zero_grad, forward, cross_entropy, backward, step.  The L2 penalty
    matches scikit-learn's (alpha / batch size on the weights, none on the
    biases)."""
    name = "torch"

    def __init__(self, hidden, alpha, seed):
        self.hidden, self.alpha, self.seed = hidden, alpha, seed

    @staticmethod
    def available():
        try:
            import torch  # noqa: F401
            return True
        except Exception:
            return False

    def build(self, n_features, n_classes, batch_size, lr, dtype):
        import torch
        torch.manual_seed(self.seed)
        layers, width = [], n_features
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, n_classes))
        model = torch.nn.Sequential(*layers).to(getattr(torch, str(dtype)))
        weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
        biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)]
        opt = torch.optim.SGD([{"params": weights, "weight_decay": self.alpha / batch_size},
                               {"params": biases, "weight_decay": 0.0}],
                              lr=lr, momentum=MOMENTUM, nesterov=True)
        return model, opt

    def setup(self, X, y, batch_size, lr, epochs, threads):
        import torch
        model, opt = self.build(X.shape[1], N_CLASSES, batch_size, lr, X.dtype)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y)
        gen = torch.Generator().manual_seed(self.seed)
        return dict(model=model, opt=opt, Xt=Xt, yt=yt, gen=gen, batch_size=batch_size,
                    epochs=epochs)

    @staticmethod
    def train(model, opt, Xt, yt, batch_size, epochs, gen):
        import torch
        from torch.nn.functional import cross_entropy
        n = Xt.shape[0]
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                xb, yb = Xt[idx], yt[idx]
                opt.zero_grad()
                loss = cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()

    def run(self, state, X, y):
        self.train(state["model"], state["opt"], state["Xt"], state["yt"],
                   state["batch_size"], state["epochs"], state["gen"])

    @staticmethod
    def full_loss(model, Xt, yt):
        import torch
        from torch.nn.functional import cross_entropy
        with torch.no_grad():
            return float(cross_entropy(model(Xt), yt))

    def after(self, state, X, y):
        return {"final_loss": self.full_loss(state["model"], state["Xt"], state["yt"])}


class _StreamMixin:
    """Online learning: partial_fit on consecutive chunks of batch_size
    rows.  setup makes the first call (it initialises the model); run makes
    the others, `pause` seconds apart, each call timed into `call_seconds`."""
    pause = 0.0

    def setup(self, X, y, batch_size, lr, epochs, threads):
        import numpy as np
        est = super().setup(X, y, batch_size, lr, epochs, threads)
        est.partial_fit(X[:batch_size], y[:batch_size], classes=np.arange(N_CLASSES))
        return est

    def run(self, est, X, y):
        chunk = est.batch_size
        for i in range(chunk, X.shape[0], chunk):
            self.call(lambda: est.partial_fit(X[i:i + chunk], y[i:i + chunk]))

    def call(self, fn):
        if self.pause:
            time.sleep(self.pause)
        start = time.perf_counter()
        fn()
        self.__dict__.setdefault("call_seconds", []).append(time.perf_counter() - start)


class FastsgdStreamRunner(_StreamMixin, FastsgdRunner):
    pass


class SklearnStreamRunner(_StreamMixin, SklearnMLPRunner):
    pass


class TorchStreamRunner(_StreamMixin, TorchRunner):
    """PyTorch's partial_fit: the chunk's numpy arrays become tensors, then
    one shuffled epoch of TorchRunner's loop over them."""

    def setup(self, X, y, batch_size, lr, epochs, threads):
        state = TorchRunner.setup(self, X, y, batch_size, lr, epochs, threads)
        self.partial_fit(state, X[:batch_size], y[:batch_size])
        return state

    def partial_fit(self, state, Xc, yc):
        import torch
        self.train(state["model"], state["opt"], torch.from_numpy(Xc), torch.from_numpy(yc),
                   state["batch_size"], 1, state["gen"])

    def run(self, state, X, y):
        chunk = state["batch_size"]
        for i in range(chunk, X.shape[0], chunk):
            self.call(lambda: self.partial_fit(state, X[i:i + chunk], y[i:i + chunk]))
