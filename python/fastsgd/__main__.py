"""Command line: ``python -m fastsgd [demo | bench | info]`` (also ``fastsgd``).

``demo`` (the default) trains on scikit-learn's digits data, which ships with
scikit-learn, and prints test accuracy and training time next to the same fit
by scikit-learn's own MLPClassifier(solver='sgd').
"""

import argparse
import sys
import time
import warnings


def _demo(args):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from fastsgd import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y)
    params = dict(hidden_layer_sizes=(args.hidden,), batch_size=args.batch_size,
                  learning_rate_init=args.learning_rate, max_iter=args.epochs,
                  random_state=args.seed)
    print(f"digits: {X_train.shape[0]} training rows, {X_test.shape[0]} test rows, "
          f"{X.shape[1]} features, {len(np.unique(y))} classes")
    print(f"network {X.shape[1]}-{args.hidden}-10 (relu), SGD momentum 0.9 (Nesterov), "
          f"batch_size={args.batch_size}, learning_rate_init={args.learning_rate}, "
          f"{args.epochs} epochs, random_state={args.seed}\n")

    results = []
    for name, make in (("fastsgd", lambda: MLPClassifier(**params)),
                       ("scikit-learn", lambda: SklearnMLP(solver="sgd", **params))):
        model = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X_train, y_train)
            seconds = time.perf_counter() - start
        accuracy = model.score(X_test, y_test)
        results.append((name, model, seconds, accuracy))
        print(f"{name:>13}: test accuracy {accuracy:.4f}   training time {seconds:8.3f} s   "
              f"final loss {model.loss_:.6f}")

    (_, fast, fast_s, _), (_, ref, ref_s, _) = results
    diff = max(float(np.max(np.abs(a - b)))
               for a, b in zip(fast.coefs_ + fast.intercepts_, ref.coefs_ + ref.intercepts_))
    print(f"\nfastsgd is {ref_s / fast_s:.1f}x faster; largest weight difference "
          f"between the two models: {diff:.2e} (same random_state, same algorithm)")
    return 0 if results[0][3] >= 0.9 else 1


def _info(args):
    from fastsgd import show_config
    show_config()
    return 0


def _bench_main(bench_args):
    from fastsgd._bench import main as bench_main
    return bench_main(bench_args)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # the benchmark has its own parser (argparse.REMAINDER would not
        # take a leading "--quick")
        return _bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="fastsgd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="train on digits, compare with scikit-learn (default)")
    for p in (parser, demo):
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--hidden", type=int, default=100)
        p.add_argument("--learning-rate", type=float, default=0.01)
        p.add_argument("--epochs", type=int, default=50)
        p.add_argument("--seed", type=int, default=0)
    sub.add_parser("info", help="print the build and runtime configuration")
    sub.add_parser("bench", help="benchmark against scikit-learn and PyTorch "
                                 "(python -m fastsgd bench --help)")
    args = parser.parse_args(argv)
    command = args.command or "demo"
    return {"demo": _demo, "info": _info}[command](args)


if __name__ == "__main__":
    sys.exit(main())
