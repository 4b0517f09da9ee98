/* svg.h: the small SVG writer the examples share. Line charts (several
 * series, axes, ticks, a legend) and heat maps (a colour bar), as plain SVG
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
 * coloured by log10 of the values (all > 0), with a colour bar. */
static int svg_heat_map(const char *path, const char *title, const char *xlabel, const char *ylabel,
                        const float *m, int rows, int cols)
{
    const double W = 640, H = 420, L = 70, R = 110, T = 40, B = 55, pw = W - L - R, ph = H - T - B;
    static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    double lo = 1e300, hi = -1e300;
    FILE *f = fopen(path, "w");
    int i, j, k;
    char buf[64];
    if (!f) return -1;
    for (i = 0; i < rows * cols; i++) {
        double v = log10(m[i] > 1e-30f ? m[i] : 1e-30f);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (hi <= lo) hi = lo + 1.0;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<g shape-rendering=\"crispEdges\">\n");
    svg_text(f, L + pw / 2, 24, "middle", 16, title, 0);
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++) {
            double t = (log10(m[i * cols + j] > 1e-30f ? m[i * cols + j] : 1e-30f) - lo) / (hi - lo), c[3];
            int seg = t >= 1.0 ? 3 : (int)(t * 4.0);
            double u = t * 4.0 - seg;
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
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}
#endif
