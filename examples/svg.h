/* svg.h: the small SVG writer the examples share. Line charts (several
 * series, axes, ticks, a legend) and heat maps (a colour bar, on the map's
 * own range or on one given, so that several maps share a scale), as plain SVG
 * that opens in any browser. Each function returns 0, or -1 when the file
 * cannot be written. */
#ifndef EXAMPLES_SVG_H
#define EXAMPLES_SVG_H
#include <math.h>
#include <stdio.h>

typedef struct svg_series {
    const char *label;
    const float *y;   /* (n) values at x = 0..n-1 */
    int n;
} svg_series;

static const char *const svg_colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};

static void svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *s, int rotate)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-family=\"sans-serif\" font-size=\"%d\"", x, y,
            anchor, size);
    if (rotate) fprintf(f, " transform=\"rotate(-90 %.1f %.1f)\"", x, y);
    fputc('>', f);
    for (; *s; s++) { /* escape for XML */
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
    fputs("</text>\n", f);
}

/* y against x = 0..n-1 for each series, the y axis from ymin to ymax. */
static int svg_line_chart(const char *path, const char *title, const char *xlabel, const char *ylabel,
                          const svg_series *s, int ns, float ymin, float ymax)
{
    const double W = 640, H = 420, L = 70, R = 150, T = 40, B = 55, pw = W - L - R, ph = H - T - B;
    FILE *f = fopen(path, "w");
    int i, k, n = 0;
    char buf[64];
    if (!f) return -1;
    for (i = 0; i < ns; i++) if (s[i].n > n) n = s[i].n;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    svg_text(f, L + pw / 2, 24, "middle", 16, title, 0);
    for (k = 0; k <= 5; k++) { /* y grid and ticks */
        double v = ymin + (ymax - ymin) * k / 5.0, y = T + ph - ph * k / 5.0;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, L + pw, y);
        snprintf(buf, sizeof buf, "%g", v);
        svg_text(f, L - 8, y + 4, "end", 12, buf, 0);
    }
    for (k = 0; k < n; k += n > 16 ? (n + 15) / 16 : 1) { /* x ticks */
        double x = L + (n > 1 ? pw * k / (n - 1) : 0);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x, T + ph, x, T + ph + 5);
        snprintf(buf, sizeof buf, "%d", k);
        svg_text(f, x, T + ph + 19, "middle", 12, buf, 0);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw, ph);
    svg_text(f, L + pw / 2, H - 12, "middle", 13, xlabel, 0);
    svg_text(f, 18, T + ph / 2, "middle", 13, ylabel, 1);
    for (i = 0; i < ns; i++) {
        const char *col = svg_colors[i % 6];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (k = 0; k < s[i].n; k++) {
            double v = s[i].y[k] < ymin ? ymin : s[i].y[k] > ymax ? ymax : s[i].y[k];
            fprintf(f, "%.1f,%.1f ", L + (n > 1 ? pw * k / (n - 1) : 0), T + ph - ph * (v - ymin) / (ymax - ymin));
        }
        fputs("\"/>\n", f);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", L + pw + 15,
                T + 15 + 22.0 * i, L + pw + 40, T + 15 + 22.0 * i, col);
        svg_text(f, L + pw + 46, T + 19 + 22.0 * i, "start", 13, s[i].label, 0);
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

/* A rows x cols matrix m (row-major) as coloured cells, row 0 at the top,
 * coloured by log10 of the values on the scale vmin..vmax (both > 0; cells
 * outside it take the end colours), with a colour bar labelled vmax at the
 * top and vmin at the bottom. Several maps drawn with the same vmin and vmax
 * share one colour scale. bar_label NULL: nothing more (svg_heat_map's
 * output); otherwise the bar also gets tick marks at round values
 * (1, 2, 5 x 10^d, or decades only over 3 decades or more) and bar_label
 * written along it. */
static int svg_heat_map_range(const char *path, const char *title, const char *xlabel, const char *ylabel,
                              const float *m, int rows, int cols, double vmin, double vmax, const char *bar_label)
{
    const double W = 640, H = 420, L = 70, R = 110, T = 40, B = 55, pw = W - L - R, ph = H - T - B;
    static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    double lo = log10(vmin > 1e-30 ? vmin : 1e-30), hi = log10(vmax > 1e-30 ? vmax : 1e-30);
    FILE *f = fopen(path, "w");
    int i, j, k;
    char buf[64];
    if (!f) return -1;
    if (hi <= lo) hi = lo + 1.0;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<g shape-rendering=\"crispEdges\">\n");
    svg_text(f, L + pw / 2, 24, "middle", 16, title, 0);
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++) {
            double t = (log10(m[i * cols + j] > 1e-30f ? m[i * cols + j] : 1e-30f) - lo) / (hi - lo), c[3];
            int seg;
            double u;
            if (t < 0.0) t = 0.0; /* outside the scale: the end colours (never, on a map's own range) */
            else if (t > 1.0) t = 1.0;
            seg = t >= 1.0 ? 3 : (int)(t * 4.0);
            u = t * 4.0 - seg;
            for (k = 0; k < 3; k++) c[k] = stops[seg][k] + (stops[seg + 1][k] - stops[seg][k]) * u;
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"rgb(%d,%d,%d)\"/>\n",
                    L + pw * j / cols, T + ph * i / rows, pw / cols + 0.3, ph / rows + 0.3, (int)c[0], (int)c[1], (int)c[2]);
        }
    for (i = 0; i < rows; i += rows > 16 ? (rows + 15) / 16 : 1) {
        snprintf(buf, sizeof buf, "%d", i + 1);
        svg_text(f, L - 8, T + ph * (i + 0.5) / rows + 4, "end", 12, buf, 0);
    }
    for (j = 0; j < cols; j += cols > 12 ? (cols + 11) / 12 : 1) {
        snprintf(buf, sizeof buf, "%d", j + 1);
        svg_text(f, L + pw * (j + 0.5) / cols, T + ph + 18, "middle", 12, buf, 0);
    }
    svg_text(f, L + pw / 2, H - 12, "middle", 13, xlabel, 0);
    svg_text(f, 18, T + ph / 2, "middle", 13, ylabel, 1);
    for (k = 0; k < 50; k++) { /* the colour bar, high at the top */
        double t = 1.0 - k / 49.0, c[3];
        int seg = t >= 1.0 ? 3 : (int)(t * 4.0), q;
        double u = t * 4.0 - seg;
        for (q = 0; q < 3; q++) c[q] = stops[seg][q] + (stops[seg + 1][q] - stops[seg][q]) * u;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"18\" height=\"%.2f\" fill=\"rgb(%d,%d,%d)\"/>\n", L + pw + 25,
                T + ph * k / 50.0, ph / 50.0 + 0.3, (int)c[0], (int)c[1], (int)c[2]);
    }
    fputs("</g>\n", f);
    snprintf(buf, sizeof buf, "%.2g", pow(10.0, hi));
    svg_text(f, L + pw + 48, T + 10, "start", 11, buf, 0);
    snprintf(buf, sizeof buf, "%.2g", pow(10.0, lo));
    svg_text(f, L + pw + 48, T + ph, "start", 11, buf, 0);
    if (bar_label) {
        static const double mant[3] = {1.0, 2.0, 5.0};
        int d, nm = hi - lo >= 3.0 ? 1 : 3;
        double last = T + 6; /* the y of the label above the next tick: the top label first */
        for (d = (int)floor(hi); d >= (int)floor(lo); d--)
            for (k = nm - 1; k >= 0; k--) {
                double v = mant[k] * pow(10.0, d), y = T + ph * (hi - log10(v)) / (hi - lo);
                if (log10(v) > hi || log10(v) < lo || y - last < 14.0 || T + ph - 4 - y < 14.0) continue;
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\" stroke=\"#333\"/>\n", L + pw + 39, y,
                        L + pw + 47, y);
                snprintf(buf, sizeof buf, "%g", v);
                svg_text(f, L + pw + 50, y + 4, "start", 11, buf, 0);
                last = y;
            }
        svg_text(f, W - 8, T + ph / 2, "middle", 12, bar_label, 1);
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

/* svg_heat_map_range on the map's own range: the smallest and largest value. */
static int svg_heat_map(const char *path, const char *title, const char *xlabel, const char *ylabel,
                        const float *m, int rows, int cols)
{
    float lo = (float)HUGE_VAL, hi = -(float)HUGE_VAL; /* an empty map: "inf" at both ends, as before */
    int i;
    for (i = 0; i < rows * cols; i++) {
        float v = m[i] > 1e-30f ? m[i] : 1e-30f;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    return svg_heat_map_range(path, title, xlabel, ylabel, m, rows, cols, lo, hi, NULL);
}

/* One curve of svg_log_panels: y[0..n-1] drawn at x = 1..n in colour
 * svg_colors[color % 6], solid or dashed, each point marked; values <= 0
 * have no logarithm and are left out (the line breaks there). */
typedef struct svg_curve {
    const char *label;  /* legend text, or NULL for none                    */
    const float *y;     /* (n) values at x = 1..n                           */
    int n;
    int color;
    int dashed;
} svg_curve;

/* Panels side by side, each a line chart of its curves (curves[p], n_curves[p]
 * of them, titled panel_titles[p]) with a shared log10 y axis spanning the
 * whole decades that hold every positive value, and one legend: the labelled
 * curves of panel 0. Inline, so that the programs that include svg.h without
 * drawing panels get no unused-function warning. */
static inline int svg_log_panels(const char *path, const char *title, const char *xlabel, const char *ylabel,
                                 const char *const *panel_titles, const svg_curve *const *curves,
                                 const int *n_curves, int n_panels)
{
    const double pw = 260, ph = 300, L = 75, gap = 30, T = 60, B = 55, R = 150;
    const double W = L + n_panels * pw + (n_panels - 1) * gap + R, H = T + ph + B;
    double lo = 1e300, hi = -1e300;
    FILE *f;
    int p, i, k, d, n = 1, step;
    char buf[64];
    for (p = 0; p < n_panels; p++)
        for (i = 0; i < n_curves[p]; i++) {
            if (curves[p][i].n > n) n = curves[p][i].n;
            for (k = 0; k < curves[p][i].n; k++)
                if (curves[p][i].y[k] > 0.0f) {
                    double v = log10((double)curves[p][i].y[k]);
                    if (v < lo) lo = v;
                    if (v > hi) hi = v;
                }
        }
    if (lo > hi) lo = hi = 0.0; /* nothing positive: an empty decade */
    lo = floor(lo);
    hi = ceil(hi);
    if (hi <= lo) hi = lo + 1.0;
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    svg_text(f, (L + W - R) / 2, 24, "middle", 16, title, 0);
    step = (int)ceil((hi - lo) / 8.0); /* at most about 8 decade lines */
    for (p = 0; p < n_panels; p++) {
        double x0 = L + p * (pw + gap);
        svg_text(f, x0 + pw / 2, T - 10, "middle", 13, panel_titles[p], 0);
        for (d = 0; d <= (int)(hi - lo); d += step) { /* decades */
            double y = T + ph - ph * d / (hi - lo);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, y, x0 + pw, y);
            if (p == 0) {
                snprintf(buf, sizeof buf, "1e%d", (int)(lo + d));
                svg_text(f, x0 - 8, y + 4, "end", 12, buf, 0);
            }
        }
        for (k = 0; k < n; k += n > 12 ? (n + 11) / 12 : 1) { /* x ticks at 1..n */
            double x = x0 + (n > 1 ? pw * k / (n - 1) : pw / 2);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x, T + ph, x, T + ph + 5);
            snprintf(buf, sizeof buf, "%d", k + 1);
            svg_text(f, x, T + ph + 19, "middle", 12, buf, 0);
        }
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", x0, T,
                pw, ph);
        for (i = 0; i < n_curves[p]; i++) {
            const svg_curve *c = &curves[p][i];
            const char *col = svg_colors[c->color % 6];
            int open = 0;
            for (k = 0; k <= c->n; k++) { /* polylines over each run of positive values */
                int have = k < c->n && c->y[k] > 0.0f;
                if (have && !open) {
                    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s points=\"", col,
                            c->dashed ? " stroke-dasharray=\"5,3\"" : "");
                    open = 1;
                }
                if (have)
                    fprintf(f, "%.1f,%.1f ", x0 + (n > 1 ? pw * k / (n - 1) : pw / 2),
                            T + ph - ph * (log10((double)c->y[k]) - lo) / (hi - lo));
                if (!have && open) {
                    fputs("\"/>\n", f);
                    open = 0;
                }
            }
            for (k = 0; k < c->n; k++)
                if (c->y[k] > 0.0f)
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\"/>\n",
                            x0 + (n > 1 ? pw * k / (n - 1) : pw / 2),
                            T + ph - ph * (log10((double)c->y[k]) - lo) / (hi - lo), col);
        }
    }
    svg_text(f, (L + W - R) / 2, H - 12, "middle", 13, xlabel, 0);
    svg_text(f, 18, T + ph / 2, "middle", 13, ylabel, 1);
    for (i = 0, k = 0; n_panels > 0 && i < n_curves[0]; i++) { /* the legend */
        const svg_curve *c = &curves[0][i];
        double y = T + 15 + 22.0 * k, x = W - R + 15;
        if (!c->label) continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>\n", x, y,
                x + 25, y, svg_colors[c->color % 6], c->dashed ? " stroke-dasharray=\"5,3\"" : "");
        svg_text(f, x + 31, y + 4, "start", 13, c->label, 0);
        k++;
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}
#endif
