"""What the bench prints and writes: the console header and table rows,
notes on suspicious results, and the JSON, Markdown and PNG outputs."""

import json
import math
import os
import sys

from ._machine import busy_warning


def fmt_rate(v):
    if v is None or not math.isfinite(v):
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_ratio(v):
    return "—" if v is None else f"{v:.1f}×" if v >= 10 else f"{v:.2f}×"


def fmt_frac(v):
    return "—" if v is None else f"{v:.2f}"


def fmt_us(v):
    return "-" if v is None else f"{v:,.0f}"


def ratio(a, b):
    return a / b if a and b else None


def print_header(machine, warning):
    import fastsgd
    print("=" * 78)
    print("fastsgd bench")
    print("=" * 78)
    try:
        fastsgd.show_config()
    except Exception as exc:  # pragma: no cover
        print(f"fastsgd.show_config() failed: {exc}")
    print(f"  CPU          {machine['cpu_model']} ({machine['usable_cpus']} usable cpus"
          f"{', AVX-512' if machine['avx512'] else ''})")
    pools = machine.get("threadpools")
    if isinstance(pools, list):
        for p in pools:
            if p.get("user_api") == "blas":
                print(f"  BLAS pool    {p.get('internal_api')} {p.get('version')}: "
                      f"architecture {p.get('architecture')}, {p.get('num_threads')} threads "
                      f"({os.path.basename(p.get('filepath', ''))})")
    if "torch" in machine["versions"]:
        print(f"  torch        {machine['versions']['torch']}")
    if "loadavg_start" in machine:
        print("  load average " + " ".join(f"{v:.2f}" for v in machine["loadavg_start"]))
    if warning:
        bar = "!" * 78
        print(bar)
        print("!! WARNING: " + warning)
        print(bar)
        print(f"WARNING: {warning}", file=sys.stderr)
    busy = busy_warning(machine)
    if busy:
        print("WARNING: " + busy)
    print(flush=True)


def console_table_header(names):
    cols = " | ".join(f"{n:>18}" for n in names)
    print(f"{'batch':>6} {'rows':>7} {'ep':>2} | {cols} | {'f/skl':>6} {'f/torch':>7} | "
          f"{'frac':>5}")
    print(f"{'':>6} {'':>7} {'':>2} | " + " | ".join(f"{'rows/s   ms/epoch':>18}" for _ in names)
          + " |")


def console_row(row, names):
    cells = []
    for n in names:
        r = row["frameworks"].get(n, {})
        rate = r.get("rows_per_s")
        ms = r.get("seconds_per_epoch")
        if ms:
            cells.append(f"{fmt_rate(rate):>7} {ms * 1e3:>10.1f}")
        else:
            cells.append(f"{'error' if r.get('error') else '—':>18}")
    print(f"{row['batch_label']:>6} {row['n_rows']:>7,} {row['epochs']:>2} | " + " | ".join(cells)
          + f" | {fmt_ratio(row['ratio_vs_sklearn']):>6} {fmt_ratio(row['ratio_vs_torch']):>7} | "
          f"{fmt_frac(row['fraction_of_limit'].get('fastsgd')):>5}", flush=True)
    for note in row.get("notes", []):
        print(f"       NOTE: {note}", flush=True)


def console_thread_speedup(speedup):
    for threads in sorted({s["threads"] for s in speedup}):
        for dtype in sorted({s["dtype"] for s in speedup}):
            cells = [f"{s['batch_label']} {s['speedup']:.2f}×" for s in speedup
                     if s["threads"] == threads and s["dtype"] == dtype]
            print(f"--- fastsgd, {threads} threads against 1, {dtype}, by batch: "
                  + ", ".join(cells))
    if speedup:
        print(flush=True)


def check_notes(fw, dtype):
    """Warnings about a group's results: failures, non-finite losses, and
    fastsgd not training the same model as scikit-learn."""
    notes = []
    for name, r in fw.items():
        if r.get("error"):
            notes.append(f"{name} failed: {r['error']}")
        elif r.get("loss_finite") is False:
            notes.append(f"{name}: non-finite loss")
    # same random_state, same algorithm: the same model up to rounding.  In
    # float32 rounding differences (another BLAS kernel, summation order)
    # can flip a ReLU and grow to ~1e-2 in the weights over a few epochs,
    # so there compare the losses; float64 must agree closely.
    f, s = fw.get("fastsgd", {}), fw.get("scikit-learn", {})
    diff = f.get("max_abs_weight_diff_vs_sklearn")
    if diff is not None and dtype == "float64" and diff > 1e-5:
        notes.append(f"fastsgd and scikit-learn weights differ by up to {diff:.3g} "
                     "(same random_state and algorithm: they should agree)")
    lf, ls = f.get("final_loss"), s.get("final_loss")
    if lf is not None and ls is not None and abs(lf - ls) > 0.01 + 0.01 * abs(ls):
        notes.append(f"fastsgd's final loss {lf:.4f} differs from scikit-learn's {ls:.4f}")
    return notes


def write_markdown(path, result):
    cfg = result["config"]
    m = result["machine"]
    lines = ["# fastsgd bench", ""]
    for key in ("env_warning", "busy_warning"):
        if result.get(key):
            lines += [f"> **WARNING:** {result[key]}", ""]
    lines += [
        f"- created {result['created']}; `{result['command']}`",
        f"- CPU {m.get('cpu_model')}, {m.get('usable_cpus')} usable cpus; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- network {'-'.join(str(u) for u in cfg['units'])} "
        f"({cfg['activation']}), {cfg['flops_per_row']:,} matrix-product flops per row; "
        f"SGD momentum {cfg['momentum']} Nesterov, alpha {cfg['alpha']}, "
        "learning rate 0.01 for batch ≥ 32, 0.001 below",
        f"- rows/s = rows × epochs / median wall time of {cfg['repeats']} interleaved fits; "
        "full batch = all rows of the group; "
        "frac = fastsgd rows/s ÷ (numpy matmul GFLOP/s ÷ flops per row)",
        "",
    ]
    if result.get("matmul"):
        lines += ["| dtype | threads | matmul GFLOP/s | limit rows/s |", "|---|---|---|---|"]
        for mm in result["matmul"]:
            lines.append(f"| {mm['dtype']} | {mm['threads']} | {mm['gflops']:.1f} | "
                         f"{fmt_rate(mm['limit_rows_per_s'])} |")
        lines.append("")
    names = result["frameworks"]
    if result["results"]:
        head = (["dtype", "threads", "batch", "rows", "epochs"]
                + [f"{n} rows/s" for n in names]
                + ["fastsgd/scikit-learn", "fastsgd/torch", "fastsgd frac of limit"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in result["results"]:
            cells = [row["dtype"], str(row["threads"]), row["batch_label"],
                     f"{row['n_rows']:,}", str(row["epochs"])]
            cells += [fmt_rate(row["frameworks"].get(n, {}).get("rows_per_s")) for n in names]
            cells += [fmt_ratio(row["ratio_vs_sklearn"]), fmt_ratio(row["ratio_vs_torch"]),
                      fmt_frac(row["fraction_of_limit"].get("fastsgd"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        noted = [r for r in result["results"] if r.get("notes")]
        if noted:
            lines += ["Notes on single rows (crowding, failures, checks):", ""]
            lines += [f"- {r['dtype']}, {r['threads']} thread(s), batch {r['batch_label']}: "
                      + "; ".join(r["notes"]) for r in noted]
            lines.append("")
    if result.get("thread_speedup"):
        batches = list(dict.fromkeys(s["batch_label"] for s in result["thread_speedup"]))
        lines += ["## fastsgd: more threads against one", "",
                  "rows/s with k threads ÷ rows/s with 1 thread, same dtype and batch, "
                  "from the table above", "",
                  "| dtype | threads | " + " | ".join(f"batch {b}" for b in batches) + " |",
                  "|---|---|" + "---|" * len(batches)]
        for key in dict.fromkeys((s["dtype"], s["threads"]) for s in result["thread_speedup"]):
            got = {s["batch_label"]: s["speedup"] for s in result["thread_speedup"]
                   if (s["dtype"], s["threads"]) == key}
            lines.append(f"| {key[0]} | {key[1]} | "
                         + " | ".join(f"{got[b]:.2f}×" if b in got else "—" for b in batches)
                         + " |")
        lines.append("")
    if result.get("linear"):
        lin_names = result["linear_frameworks"]
        lines += ["## Linear model (hidden_layer_sizes=(), batch 1, 1 thread)", "",
                  "SGDClassifier: loss='log_loss', constant learning rate, max_iter=1, "
                  "tol=None (one epoch, one-vs-rest); scikit-learn = MLPClassifier(solver='sgd', "
                  "hidden_layer_sizes=()).", ""]
        head = (["dtype", "rows"] + [f"{n} rows/s" for n in lin_names]
                + ["fastsgd/SGDClassifier", "fastsgd/scikit-learn", "fastsgd/torch"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in result["linear"]:
            cells = [row["dtype"], f"{row['n_rows']:,}"]
            cells += [fmt_rate(row["frameworks"].get(n, {}).get("rows_per_s")) for n in lin_names]
            cells += [fmt_ratio(row["ratios"].get(k)) for k in
                      ("SGDClassifier", "scikit-learn", "torch")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if result.get("stream"):
        st_names = result["stream_frameworks"]
        first = result["stream"][0]
        lines += [f"## Online learning: partial_fit on {first['calls']} consecutive "
                  f"{first['chunk_rows']}-row chunks", "",
                  "One batch per call; the first call (initialisation) is not timed; each "
                  "call's input checks are.  Without pauses: total time / calls; with "
                  "pauses (chunks arriving apart, the last row): the median call.", ""]
        head = (["dtype", "threads", "calls", "pause"] + [f"{n} µs/call" for n in st_names]
                + ["fastsgd/scikit-learn", "fastsgd/torch"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in result["stream"]:
            cells = [row["dtype"], str(row["threads"]), str(row["calls"]),
                     f"{row['pause_ms']:.0f} ms" if row.get("pause_ms") else "none"]
            cells += [fmt_us(row["frameworks"].get(n, {}).get("us_per_call")) for n in st_names]
            cells += [fmt_ratio(row["ratio_vs_sklearn"]), fmt_ratio(row["ratio_vs_torch"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_plot(path, result):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return False
    configs = []
    for row in result["results"]:
        key = (row["dtype"], row["threads"])
        if key not in configs:
            configs.append(key)
    if not configs:
        return False
    dtypes = sorted({c[0] for c in configs}, key=[c[0] for c in configs].index)
    threads = sorted({c[1] for c in configs})
    fig, axes = plt.subplots(len(dtypes), len(threads), squeeze=False,
                             figsize=(5.2 * len(threads), 4.0 * len(dtypes)), sharey=True)
    styles = {"fastsgd": "o-", "scikit-learn": "s--", "torch": "^:"}
    for i, dt in enumerate(dtypes):
        for j, th in enumerate(threads):
            ax = axes[i][j]
            rows = [r for r in result["results"] if r["dtype"] == dt and r["threads"] == th]
            for name in result["frameworks"]:
                pts = [(r["batch_size"], r["frameworks"][name]["rows_per_s"]) for r in rows
                       if r["frameworks"].get(name, {}).get("rows_per_s")]
                if pts:
                    ax.plot(*zip(*pts), styles.get(name, "x-"), label=name)
            limit = [(r["batch_size"], r["limit_rows_per_s"]) for r in rows
                     if r.get("limit_rows_per_s")]
            if limit:
                ax.plot(*zip(*limit), color="grey", lw=1, ls="-.", label="machine limit")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{dt}, {th} thread{'s' if th > 1 else ''}")
            ax.set_xlabel("batch size (rightmost = full batch)")
            ax.set_ylabel("rows / s")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("-".join(str(u) for u in result["config"]["units"]) + " MLP, SGD: training rows/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return jsonable(obj.item())
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_outputs(args, result, stem, write_md):
    """Write STEM.json, STEM.md (by write_md) and, for the speed run, the
    plot STEM.png, into args.out."""
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, f"{stem}.json")
    md_path = os.path.join(args.out, f"{stem}.md")
    with open(json_path, "w") as f:
        json.dump(jsonable(result), f, indent=1)
    write_md(md_path, result)
    written = [json_path, md_path]
    if result.get("results") is not None:
        png_path = os.path.join(args.out, f"{stem}.png")
        if write_plot(png_path, result):
            written.append(png_path)
        else:
            print("(matplotlib not importable: no plot)")
    print("wrote " + ", ".join(written))
