#!/usr/bin/env python3
"""Depth that adapts to the task (docs/results.md): for each training log (train_mixer's CSV), the
probes of its last evaluation as the gap to the full network's accuracy, a_k - a_L in points, against
the blocks kept k, one line per log (solid for labels that start with "ACN", dashed otherwise), with
the 1-point line; and a Markdown table of the blocks each needs to come within 1 point.

    python3 docs/results/plot_classes.py OUT.svg LABEL=LOG.csv [LABEL=LOG.csv ...]

Standard library only.
"""
import csv
import sys

COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#1b9e77", "#d95f02", "#7570b3"]
FLOOR = -30.0  # gaps below this are drawn at it


def last_probes(path):
    rows = [r for r in csv.DictReader(l for l in open(path) if not l.startswith("#")) if r["test_acc"]]
    r = rows[-1]
    k = 0
    out = []
    while "probe_%d" % k in r:
        out.append(float(r["probe_%d" % k]))
        k += 1
    return int(r["epoch"]), out


def main():
    out, series = sys.argv[1], []
    for arg in sys.argv[2:]:
        label, path = arg.split("=", 1)
        epoch, p = last_probes(path)
        series.append((label, epoch, p))
    print("| run | epoch | full accuracy | blocks within 1 point |")
    print("|---|---|---|---|")
    for label, epoch, p in series:
        L = len(p) - 1
        need = next(k for k in range(L + 1) if p[k] >= p[L] - 1.0)
        print("| %s | %d | %.2f%% | %d of %d |" % (label, epoch, p[L], need, L))
    W, H, Lm, R, T, B = 700, 440, 70, 190, 40, 55
    pw, ph = W - Lm - R, H - T - B
    L = max(len(p) - 1 for _, _, p in series)
    px = lambda k: Lm + pw * k / L
    py = lambda y: T + ph * (0.0 - max(y, FLOOR)) / (0.0 - FLOOR)
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">' % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%.1f" y="24" text-anchor="middle" font-family="sans-serif" font-size="15">'
           'Test accuracy after k blocks, minus the full network\'s (points)</text>' % (Lm + pw / 2)]
    for y in range(0, int(FLOOR) - 1, -5):
        svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (Lm, py(y), Lm + pw, py(y)))
        svg.append('<text x="%d" y="%.1f" text-anchor="end" font-family="sans-serif" font-size="12">%s</text>'
                   % (Lm - 6, py(y) + 4, ("%d" % y) if y > FLOOR else "%d or less" % y))
    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#000" stroke-dasharray="2,3"/>'
               % (Lm, py(-1), Lm + pw, py(-1)))
    svg.append('<text x="%d" y="%.1f" font-family="sans-serif" font-size="11">-1 point</text>' % (Lm + pw + 4, py(-1) + 4))
    for k in range(0, L + 1, 2):
        svg.append('<text x="%.1f" y="%d" text-anchor="middle" font-family="sans-serif" font-size="12">%d</text>'
                   % (px(k), T + ph + 18, k))
    svg.append('<text x="%.1f" y="%d" text-anchor="middle" font-family="sans-serif" font-size="13">blocks kept (k)</text>'
               % (Lm + pw / 2, H - 12))
    svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#000"/>' % (Lm, T, pw, ph))
    for i, (label, _, p) in enumerate(series):
        gap = [a - p[-1] for a in p]
        dash = "" if label.startswith("ACN") else ' stroke-dasharray="6,4"'
        pts = " ".join("%.1f,%.1f" % (px(k), py(g)) for k, g in enumerate(gap))
        svg.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>' % (pts, COLORS[i % 6], dash))
        y = T + 16 + 20 * i
        svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>'
                   % (W - R + 40, y - 4, W - R + 70, y - 4, COLORS[i % 6], dash))
        svg.append('<text x="%d" y="%d" font-family="sans-serif" font-size="12">%s</text>' % (W - R + 76, y, label))
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
