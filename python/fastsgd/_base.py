"""BaseSGDMLP: what the two estimators share — parameters and their
validation, the fit / partial_fit orchestration (initialisation, early
stopping, schedules, the epoch loop around the compiled engine), prediction,
persistence, and the rules for failing without losing anything.

The order of every random draw follows scikit-learn 1.9's MLP with
``solver='sgd'`` (weights, then the early-stopping split, then one shuffle per
epoch), so the same ``random_state`` gives the same model.
"""

import warnings
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight

from fastsgd import _engine, _snapshots
from fastsgd._optimizer import SGDOptimizer
from fastsgd._params import ACTIVATION_CODES, OUTPUT_CODES, ParamLayout, aligned_copy
from fastsgd._threads import effective_n_threads, single_threaded_blas
from fastsgd._validation import assert_all_finite, validate_X


def _finite_in_dtype(arr, name, dtype):
    """arr as a C-contiguous array of dtype, refusing values that overflow it."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if np.asarray(arr).dtype.kind != "b" and not np.isfinite(out).all():
        raise ValueError(
            f"Input {name} contains NaN, infinity or a value too large for "
            f"{np.dtype(dtype)!r} (the model's dtype).")
    return out


# X of at least this many values is checked for NaN/inf by the first epoch's
# gathers when that epoch gathers every row (see _x_check_in_first_epoch);
# smaller X is checked up front, in microseconds
_EPOCH_CHECK_VALUES = 1 << 16

# the largest engine scratch (bytes) an estimator keeps between fit calls
_KEEP_ENGINE_BYTES = 16 << 20

# parameter values that passed scikit-learn's validation, per estimator class
_VALID_PARAMS = {}
_PLAIN_TYPES = (int, float, str, bool, type(None))


class DivergenceError(ValueError):
    """Training produced a non-finite loss or non-finite weights.

    The model keeps the weights it had before the failing epoch.
    """


class _NonFiniteX(Exception):
    """The first epoch's gathers found NaN or infinity in X (internal: _fit
    restores the model and raises scikit-learn's message)."""

    def __init__(self, X):
        super().__init__("X holds NaN or infinity")
        self.X = X


class _Checkpoint:
    """Everything a failing fit / partial_fit call must put back.

    Attributes are restored by swapping ``__dict__`` back; the arrays and
    lists that training changes in place (parameter slab, velocities, loss
    curves) are restored in place, so any view or alias of them stays valid.
    """

    def __init__(self, est):
        self.state = est.__dict__.copy()
        self.arrays = []
        for arr in (est.__dict__.get("_params"),
                    getattr(est.__dict__.get("_optimizer"), "velocity", None)):
            if arr is not None:
                self.arrays.append((arr, _snapshots.copy_of(arr)))
        opt = est.__dict__.get("_optimizer")
        self.learning_rate = None if opt is None else (opt, opt.learning_rate)
        self.lists = [(lst, len(lst)) for lst in
                      (est.__dict__.get("loss_curve_"), est.__dict__.get("validation_scores_"))
                      if isinstance(lst, list)]

    def saved_copy(self, arr):
        """The copy of `arr` taken at the start of the call, or None."""
        return next((saved for a, saved in self.arrays if a is arr), None)

    def release(self):
        """The call is over: its copies may serve the next call."""
        _snapshots.give_back(*(saved for _, saved in self.arrays))
        self.arrays = []

    def restore(self, est):
        est.__dict__.clear()
        est.__dict__.update(self.state)
        for arr, saved in self.arrays:
            arr[...] = saved
        if self.learning_rate is not None:
            opt, lr = self.learning_rate
            opt.learning_rate = lr
        for lst, length in self.lists:
            del lst[length:]


class BaseSGDMLP(BaseEstimator, ABC):
    """Base class of fastsgd's MLPClassifier and MLPRegressor.

    Not for direct use.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "n_threads": [
            None,
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
        ],
    }

    @abstractmethod
    def __init__(self, hidden_layer_sizes, activation, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, loss, shuffle, random_state, tol,
                 verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
                 validation_fraction, n_iter_no_change, n_threads):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.n_threads = n_threads

    # ----------------------------------------------------------------- hooks
    @abstractmethod
    def _validate_input(self, X, y, incremental, reset, dtype, check_finite=True):
        """Return ``(X, Y)``: X validated in ``dtype`` (a dtype or a tuple of
        accepted ones), checked for NaN/inf when ``check_finite``, Y the
        internal 2-D target matrix.  May set label state (classes_,
        binarizer)."""

    @abstractmethod
    def _output_activation(self):
        """The output activation for the current targets."""

    @abstractmethod
    def _score(self, X, y, sample_weight=None):
        """Validation score for early stopping (larger is better)."""

    # ------------------------------------------------------ parameter slab
    def _bind_views(self):
        """Point coefs_ / intercepts_ at the slab."""
        self.coefs_, self.intercepts_ = self._layout_from_units().views(self._params)

    def _layout_from_units(self):
        return ParamLayout(self._units)

    def _current_slab(self):
        """The parameter slab matching coefs_ / intercepts_.

        Normally coefs_ and intercepts_ are views into ``_params``.  If a user
        replaced them (``est.coefs_ = [...]``), pack the new arrays into a
        fresh slab (without storing it: prediction must not change state).
        """
        slab = self.__dict__.get("_params")
        coefs, intercepts = list(self.coefs_), list(self.intercepts_)
        if slab is not None and len(coefs) == len(self._units) - 1 and all(
            isinstance(a, np.ndarray) and a.base is slab for a in coefs + intercepts
        ):
            return slab
        units = [np.shape(c)[0] for c in coefs] + [np.shape(coefs[-1])[1]]
        dtype = np.result_type(*[np.asarray(a).dtype for a in list(coefs) + list(intercepts)])
        if dtype not in (np.float32, np.float64):
            dtype = np.float64
        return ParamLayout(units).pack(coefs, intercepts, dtype)

    def _sync_slab(self):
        """Before training: make the slab the single source of truth again."""
        slab = self._current_slab()
        if slab is not self.__dict__.get("_params"):
            units = [np.shape(c)[0] for c in self.coefs_] + [np.shape(self.coefs_[-1])[1]]
            self._units = tuple(units)
            self._params = slab
            self._bind_views()
            opt = self.__dict__.get("_optimizer")
            if opt is not None and (opt.velocity.shape != slab.shape
                                    or opt.velocity.dtype != slab.dtype):
                del self._optimizer  # stale velocities: start afresh

    # -------------------------------------------------------------- fitting
    def _hidden_layer_list(self):
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        hidden = list(hidden)
        if any(h <= 0 for h in hidden):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        return [int(h) for h in hidden]

    def _initialize(self, Y, units, dtype, random_state):
        """First pass: draw the weights and reset the training books."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(units)
        self.out_activation_ = self._output_activation()
        self._units = tuple(units)
        layout = ParamLayout(units)
        self._params = layout.glorot_init(random_state, self.activation, dtype)
        self._bind_views()
        # early stopping snapshots the weights at each better validation
        # score (scikit-learn's _best_coefs); until then the "best" weights
        # are the live ones (no copy: it would be fresh memory, page faults)
        self._best_params = self._params
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False):
        checkpoint = _Checkpoint(self)
        try:
            try:
                plan = self._prepare(X, y, sample_weight, incremental)
            except BaseException:
                checkpoint.restore(self)
                raise
            try:
                self._fit_stochastic(*plan, incremental=incremental, checkpoint=checkpoint)
            except _NonFiniteX as bad:
                # the first epoch found it (see _x_check_in_first_epoch): put
                # everything back, then scikit-learn's check words the error
                checkpoint.restore(self)
                assert_all_finite(bad.X, 1, type(self).__name__)
                raise ValueError("Input X contains NaN or infinity.") from None
            except Exception:
                if incremental:
                    # a partial_fit that fails leaves the model exactly as it was
                    checkpoint.restore(self)
                raise
        finally:
            checkpoint.release()
        return self

    def _prepare(self, X, y, sample_weight, incremental):
        """Validate everything and initialise; no training yet."""
        fitted = "coefs_" in self.__dict__
        if incremental and fitted:
            # scikit-learn skips this on later partial_fit calls (for speed);
            # a bad parameter deserves a clear error all the same
            self._validate_changed_params()
        hidden = self._hidden_layer_list()
        if fitted and "_params" in self.__dict__:
            self._sync_slab()
        first_pass = not fitted or (not self.warm_start and not incremental)
        # a fitted model keeps its dtype: later data is validated in it, so a
        # float64 value beyond float32's range is reported, not trained on
        dtype = (np.float64, np.float32) if first_pass else self._params.dtype
        check_x = self._x_check_in_first_epoch(X, incremental)
        with np.errstate(over="ignore"):
            X, Y = self._validate_input(X, y, incremental, reset=first_pass, dtype=dtype,
                                        check_finite=not check_x)
        Y = _finite_in_dtype(Y, "y", X.dtype)
        if sample_weight is not None:
            with np.errstate(over="ignore"):
                sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
            sample_weight = _finite_in_dtype(sample_weight, "sample_weight", X.dtype)
        units = [X.shape[1]] + hidden + [Y.shape[1]]
        if not first_pass and tuple(units) != tuple(self._units):
            raise ValueError(
                f"The network of this {type(self).__name__} has layer sizes "
                f"{list(self._units)}, but this call needs {units} (hidden_layer_sizes "
                "or the number of outputs changed); fit it anew without warm_start."
            )
        self._random_state = self._fresh_random_state()
        if first_pass:
            self._initialize(Y, units, X.dtype, self._random_state)
        dtype = self._params.dtype
        X = np.ascontiguousarray(X)  # a no-op for C-contiguous input: X is used in place
        n_threads = effective_n_threads(self.n_threads)
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = SGDOptimizer(
                self._params.shape[0], dtype, self.learning_rate_init, self.learning_rate,
                self.momentum, self.nesterovs_momentum, self.power_t)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        split = None
        if self.early_stopping:
            split = self._early_stopping_split(X, Y, sample_weight)
            if check_x:   # the validation rows are never gathered for training
                assert_all_finite(split[1], n_threads, type(self).__name__)
        return X, Y, sample_weight, split, n_threads, check_x

    def _x_check_in_first_epoch(self, X, incremental):
        """Whether this call leaves X's NaN/inf check to the engine: when its
        first epoch gathers every row it trains on (shuffled batches, or an
        early-stopping split), the gathers check each value as they copy it
        (train_epoch(check_x=True)), which saves a read of all of X: 2.8 ms
        of a 68 ms fit on 20,000 x 784 float64 rows at batch 32.  The error
        is scikit-learn's all the same, only reported after the label checks,
        and the model is put back as it was."""
        shape = getattr(X, "shape", None)
        if (shape is None or len(shape) != 2 or get_config()["assume_finite"]
                or shape[0] * shape[1] < _EPOCH_CHECK_VALUES):
            return False
        if self.early_stopping:
            return not incremental
        return bool(self.shuffle) and self._batch_size_for(shape[0], warn=False) < shape[0]

    def _batch_size_for(self, n_samples, warn=True):
        """The batch size an epoch over n_samples rows uses (as scikit-learn)."""
        if self.batch_size == "auto":
            return min(200, n_samples)
        if warn and self.batch_size > n_samples:
            warnings.warn("Got `batch_size` less than 1 or larger than "
                          "sample size. It is going to be clipped")
        return int(min(max(self.batch_size, 1), n_samples))

    def _validate_changed_params(self):
        """Later partial_fit calls, which scikit-learn does not validate:
        validate all the same (remembered, see _validate_params)."""
        self._validate_params()

    def _validate_params(self):
        """scikit-learn's parameter validation (every fit calls it), skipped
        for parameter values that passed it before: it costs 150-200 us
        (get_params inspects the signature), a tenth of a short fit.  The
        verdict depends only on the values, compared with their types, or
        by type and repr when not a plain scalar (so a list edited in place
        is seen as changed).  Failing values are never remembered."""
        values = tuple((type(v), v if type(v) in _PLAIN_TYPES else repr(v))
                       for v in map(self.__getattribute__, self._parameter_constraints))
        passed = _VALID_PARAMS.setdefault(type(self), set())
        if values in passed:
            return
        super()._validate_params()
        if len(passed) < 256:
            passed.add(values)

    def _fresh_random_state(self):
        """check_random_state(self.random_state), anew on every fit and
        partial_fit as in scikit-learn.  For an int seed the RandomState of
        the last call is re-seeded: making one costs 60 us (it first seeds
        itself from the OS), seeding one 1 us."""
        seed = self.random_state
        if isinstance(seed, Integral):
            rng = self.__dict__.get("_seeded_rng")
            if rng is None:
                rng = self._seeded_rng = check_random_state(seed)
            else:
                rng.seed(seed)
            return rng
        return check_random_state(seed)

    def _early_stopping_split(self, X, Y, sample_weight):
        """Draw the validation split exactly as scikit-learn does, but split
        row indices instead of copying the data (the draws depend only on the
        row count and the stratification labels)."""
        stratify = Y.astype(bool) if (is_classifier(self) and self.n_outputs_ == 1) else None
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0]), random_state=self._random_state,
            test_size=self.validation_fraction, stratify=stratify)
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset.")
        X_val = X[val_idx]
        y_val = self._targets_for_scoring(Y[val_idx])
        sw_val = None if sample_weight is None else sample_weight[val_idx]
        return train_idx.astype(np.int64), X_val, y_val, sw_val

    def _targets_for_scoring(self, Y):
        return Y

    def _fit_stochastic(self, X, Y, sample_weight, split, n_threads, check_x, incremental,
                        checkpoint=None):
        early_stopping = split is not None
        if early_stopping:
            train_idx, X_val, y_val, sw_val = split
            n_samples = train_idx.shape[0]
        else:
            train_idx = X_val = y_val = sw_val = None
            n_samples = X.shape[0]

        batch_size = self._batch_size_for(n_samples)

        engine = self._engine_for_network()
        params, velocity = self._params, self._optimizer.velocity
        # a partial_fit runs one epoch: the call's checkpoint holds the
        # weights from before it, so the epoch need not copy them again
        before = None
        if incremental and checkpoint is not None:
            before = (checkpoint.saved_copy(params), checkpoint.saved_copy(velocity))
            if before[0] is None or before[1] is None:
                before = None
        # else one pair of copies for the whole call, refreshed before each
        # epoch (a diverging epoch puts the weights back from them)
        snapshot = None
        empty_sw = np.empty(0, dtype=params.dtype)
        sw = empty_sw if sample_weight is None else sample_weight
        contiguous = np.empty(0, dtype=np.int64)
        batch_losses = np.empty(-(-n_samples // batch_size), dtype=np.float64)
        sample_idx = np.arange(n_samples)

        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    # one rs.shuffle of a fresh arange per epoch, composed
                    # with the previous order (sklearn.utils.shuffle)
                    perm = np.arange(n_samples)
                    self._random_state.shuffle(perm)
                    sample_idx = sample_idx[perm]
                if train_idx is not None:
                    order = train_idx[sample_idx] if self.shuffle else train_idx
                elif self.shuffle and batch_size < n_samples:
                    order = sample_idx.astype(np.int64)
                else:
                    # one batch of every row: its order only reorders the
                    # sums (rounding), so X is used in place, not copied
                    order = contiguous
                if before is None or snapshot is not None:
                    if snapshot is None:
                        snapshot = before = (_snapshots.copy_of(params),
                                             _snapshots.copy_of(velocity))
                    else:
                        np.copyto(snapshot[0], params)
                        np.copyto(snapshot[1], velocity)
                loss_sum = self._run_epoch(engine, params, velocity, X, Y, sw, order,
                                           batch_size, n_threads, batch_losses, before,
                                           check_x=check_x and self.n_iter_ == 0)
                self.n_iter_ += 1
                # scikit-learn's epoch loss: batch losses weighted by row count
                self.loss_ = loss_sum / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                self._optimizer.iteration_ends(self.t_)

                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than "
                               "tol=%f for %d consecutive epochs."
                               % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f"
                               " for %d consecutive epochs."
                               % (self.tol, self.n_iter_no_change))
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0

                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet." % self.max_iter,
                        ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            if snapshot is not None:
                _snapshots.give_back(*snapshot)

        if engine.workspace_nbytes > _KEEP_ENGINE_BYTES:
            self.__dict__.pop("_engine_cache", None)

        if early_stopping:
            # restore the best weights; like scikit-learn, the live weights and
            # the "best" snapshot are the same array afterwards
            if self._best_params is not self._params:
                self._params[...] = self._best_params
                self._best_params = self._params

    def _engine_for_network(self):
        """The compiled engine for this network.  It is kept on the
        estimator while its scratch is small (see _KEEP_ENGINE_BYTES): a
        stream of partial_fit calls then skips 30 us of set-up per call and
        keeps the engine's team/alone measurements."""
        layout = self._layout_from_units()
        key = (tuple(layout.units), self.activation, self.out_activation_)
        cached = self.__dict__.get("_engine_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        engine = _engine.Engine(layout.units, layout.coef_offsets, layout.intercept_offsets,
                                ACTIVATION_CODES[self.activation],
                                OUTPUT_CODES[self.out_activation_])
        self._engine_cache = (key, engine)
        return engine

    def _run_epoch(self, engine, params, velocity, X, Y, sw, order, batch_size, n_threads,
                   batch_losses, before, check_x=False):
        """One epoch in the engine; returns the sum of batch loss x batch
        rows.  On divergence restores the weights from `before` (copies of
        params and velocity taken before the epoch) and raises.  `check_x`:
        the engine's gathers check X (_x_check_in_first_epoch)."""
        with single_threaded_blas():
            status, done, loss_sum = engine.train_epoch(
                params, velocity, X, Y, sw, order, batch_size,
                self._optimizer.learning_rate, self._optimizer.momentum,
                self._optimizer.nesterov, self.alpha, n_threads, batch_losses, check_x)
        if status == _engine.Status.STATUS_OK and _engine.all_finite_slab(params):
            return loss_sum
        params[...], velocity[...] = before
        # an epoch that was to check X but stopped early has not seen every
        # row: bad input is reported before any other failure, as up front
        if status == _engine.Status.STATUS_NONFINITE_X or (
                check_x and status != _engine.Status.STATUS_OK
                and not _engine.all_finite_rows(X, n_threads)):
            raise _NonFiniteX(X)
        epoch = self.n_iter_ + 1
        lr = self._optimizer.learning_rate
        if status == _engine.Status.STATUS_ZERO_WEIGHT_BATCH:
            raise ValueError(
                f"Batch {done + 1} of epoch {epoch} has sample weights summing to 0, "
                "so its gradient is undefined; give those rows some weight or "
                "shuffle them among others.")
        where = (f"at batch {done} of epoch {epoch} (loss {batch_losses[done - 1]})"
                 if status == _engine.Status.STATUS_NONFINITE_LOSS else f"in epoch {epoch}")
        raise DivergenceError(
            f"Training diverged {where}: the loss or the weights became "
            f"non-finite. The weights from before this epoch were kept. Try a smaller "
            f"learning_rate_init (now {lr:g}) or momentum (now {self._optimizer.momentum:g}), "
            "or scale the input data (e.g. StandardScaler).")

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sw_val):
        if early_stopping:
            score = self._score(X_val, y_val, sample_weight=sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._params.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers
            in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The trained model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    # ----------------------------------------------------------- prediction
    def _forward_pass_fast(self, X, check_input=True):
        """The network's output for X (after the output activation)."""
        n_threads = effective_n_threads(self.n_threads)
        if check_input:
            X = validate_X(self, X, dtype=(np.float64, np.float32))
            assert_all_finite(X, n_threads, type(self).__name__)
        slab = self._current_slab()
        # computed in the wider of the model's and the data's dtype, as
        # numpy's promotion does in scikit-learn
        dtype = np.result_type(slab.dtype, X.dtype)
        if slab.dtype != dtype:
            slab = slab.astype(dtype)
        X = np.ascontiguousarray(X, dtype=dtype)
        units = [np.shape(c)[0] for c in self.coefs_] + [np.shape(self.coefs_[-1])[1]]
        layout = ParamLayout(units)
        out = np.empty((X.shape[0], units[-1]), dtype=dtype)
        with single_threaded_blas():
            _engine.predict(layout.units, layout.coef_offsets, layout.intercept_offsets,
                            ACTIVATION_CODES[self.activation],
                            OUTPUT_CODES[self.out_activation_],
                            slab, X, out, n_threads)
        return out

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    # ----------------------------------------------------------- persistence
    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_engine_cache", None)  # scratch, rebuilt on the next fit
        if "_params" in state:
            # coefs_/intercepts_ are views of the slab: store the slab once
            # (synced first, in case the user replaced the arrays)
            state = dict(state)
            slab = self._current_slab()
            if slab is not state["_params"]:
                state["_params"] = slab
                state["_units"] = tuple([np.shape(c)[0] for c in self.coefs_]
                                        + [np.shape(self.coefs_[-1])[1]])
            state.pop("coefs_", None)
            state.pop("intercepts_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_params" in self.__dict__:
            # always a copy of our own: joblib hands back views into its
            # buffers (read-only with mmap_mode), and unpickled arrays start
            # wherever numpy put them, not on the 64-byte boundary the
            # update kernels want (_params.aligned_empty)
            slab = self._params
            self._params = aligned_copy(slab)
            if self.__dict__.get("_best_params") is slab:
                # keep scikit-learn's early-stopping alias (live weights
                # and best snapshot are one array after restoring)
                self._best_params = self._params
            self._bind_views()
            opt = self.__dict__.get("_optimizer")
            if opt is not None:
                opt.velocity = aligned_copy(opt.velocity)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

