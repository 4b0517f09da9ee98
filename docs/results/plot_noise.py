#!/usr/bin/env python3
"""Noise robustness of docs/results.md: the CSV logs of --eval-only runs
(one row per evaluation: weights, step, eval_noise, eval_sp, test_loss,
test_acc, probe_0..probe_L, cpu_model, acn_version) as a Markdown table and
two SVG charts, test accuracy against Gaussian sigma and against the
salt-and-pepper probability, one line per log.

    python3 docs/results/plot_noise.py [--prefix P] OUT_DIR LABEL=LOG.csv [LABEL=LOG.csv ...]

Standard library only. The charts are written to OUT_DIR/Pnoise_gaussian.svg
and OUT_DIR/Pnoise_salt_pepper.svg (P empty unless given); the table goes to
standard output.
"""
import csv
import sys

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def read(path):
    """(gaussian, salt_pepper): lists of (level, accuracy), the clean
    evaluation (both 0) at level 0 of each."""
    gauss, sp = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            n, p, acc = float(row["eval_noise"]), float(row["eval_sp"]), float(row["test_acc"])
            if n == 0 and p == 0:
                gauss.append((0.0, acc))
                sp.append((0.0, acc))
            elif p == 0:
                gauss.append((n, acc))
            elif n == 0:
                sp.append((p, acc))
    return sorted(gauss), sorted(sp)


def chart(path, title, xlabel, series):
    """series: [(label, [(x, y), ...])]; y from 0 to the next 10 above the highest point."""
    W, H, L, R, T, B = 640, 420, 70, 170, 40, 55
    pw, ph = W - L - R, H - T - B
    xmax = max(x for _, pts in series for x, _ in pts) or 1.0
    ymax = min(100, 10 * (int(max(y for _, pts in series for _, y in pts)) // 10 + 1))
    px = lambda x: L + pw * x / xmax
    py = lambda y: T + ph - ph * y / ymax
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">' % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%.1f" y="24" text-anchor="middle" font-family="sans-serif" font-size="16">%s</text>'
           % (L + pw / 2, title)]
    for k in range(ymax // 10 + 1):
        y = 10 * k
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, py(y), L + pw, py(y)))
        out.append('<text x="%d" y="%.1f" text-anchor="end" font-family="sans-serif" font-size="12">%d</text>'
                   % (L - 8, py(y) + 4, y))
    ticks = sorted({x for _, pts in series for x, _ in pts})
    for x in ticks:
        out.append('<text x="%.1f" y="%d" text-anchor="middle" font-family="sans-serif" font-size="12">%g</text>'
                   % (px(x), T + ph + 19, x))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>' % (L, T, pw, ph))
    out.append('<text x="%.1f" y="%d" text-anchor="middle" font-family="sans-serif" font-size="13">%s</text>'
               % (L + pw / 2, H - 12, xlabel))
    out.append('<text x="18" y="%.1f" text-anchor="middle" font-family="sans-serif" font-size="13" '
               'transform="rotate(-90 18 %.1f)">test accuracy (%%)</text>' % (T + ph / 2, T + ph / 2))
    for i, (label, pts) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        dash = ' stroke-dasharray="6,4"' if "residual" in label else ""
        out.append('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>'
                   % (c, dash, " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in pts)))
        out += ['<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (px(x), py(y), c) for x, y in pts]
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"%s/>'
                   % (L + pw + 15, T + 15 + 22 * i, L + pw + 40, T + 15 + 22 * i, c, dash))
        out.append('<text x="%d" y="%d" text-anchor="start" font-family="sans-serif" font-size="13">%s</text>'
                   % (L + pw + 46, T + 19 + 22 * i, label))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    args, prefix = sys.argv[1:], ""
    if args[:1] == ["--prefix"] and len(args) > 1:
        prefix, args = args[1], args[2:]
    if len(args) < 2:
        sys.exit(__doc__)
    out_dir, runs = args[0], [a.split("=", 1) for a in args[1:]]
    data = [(label, read(path)) for label, path in runs]
    chart(out_dir + "/" + prefix + "noise_gaussian.svg", "Gaussian noise on the test images", "sigma (normalised units)",
          [(label, g) for label, (g, _) in data])
    chart(out_dir + "/" + prefix + "noise_salt_pepper.svg", "Salt-and-pepper noise on the test images",
          "probability per pixel", [(label, s) for label, (_, s) in data])
    for name, idx in (("Gaussian sigma", 0), ("salt-and-pepper p", 1)):
        levels = sorted({x for _, d in data for x, _ in d[idx]})
        print("| %s | %s |" % (name, " | ".join(label for label, _ in data)))
        print("|---|%s|" % "|".join("---" for _ in data))
        for x in levels:
            cells = []
            for _, d in data:
                acc = dict(d[idx]).get(x)
                cells.append("%.2f" % acc if acc is not None else "")
            print("| %g | %s |" % (x, " | ".join(cells)))
        print()


if __name__ == "__main__":
    main()
