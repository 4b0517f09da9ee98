/* The data loaders on files the test writes (good, truncated, corrupt,
 * compressed), checked value by value, and on the real UCI digits in
 * ../shared when they are there. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

static acn_ctx *ctx;
static const char *dir = "build/test_data";

static const char *path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}
static void put(const char *name, const unsigned char *bytes, size_t n)
{
    FILE *f = fopen(path(name), "wb");
    if (f) { fwrite(bytes, 1, n, f); fclose(f); }
}
static void put_text(const char *name, const char *text) { put(name, (const unsigned char *)text, strlen(text)); }
static int has(const char *part) { return strstr(acn_error(ctx), part) != NULL; }
static void clear(void) { acn_clear_error(ctx); }

/* CIFAR: record r has label labels[r]; its pixel j is (r * 7 + j) % 256. */
static void cifar_file(const char *name, int first, int count, const int *labels, int cifar100, int cut)
{
    size_t rec = 3072 + (cifar100 ? 2 : 1), r, j;
    unsigned char *b = (unsigned char *)malloc(rec * (size_t)count);
    for (r = 0; r < (size_t)count; r++) {
        unsigned char *p = b + r * rec;
        if (cifar100) { p[0] = (unsigned char)(labels[first + r] / 5); p[1] = (unsigned char)labels[first + r]; }
        else p[0] = (unsigned char)labels[first + r];
        for (j = 0; j < 3072; j++) p[(cifar100 ? 2 : 1) + j] = (unsigned char)(((size_t)first + r) * 7 + j);
    }
    put(name, b, rec * (size_t)count - (size_t)cut);
    free(b);
}

static void test_cifar(void)
{
    acn_dataset ds;
    const int labels[3] = {0, 9, 4}, fine[2] = {57, 3};
    const char *files[2];
    float x[2 * 3072];
    int y[2], idx[2] = {2, 0};
    cifar_file("c10a.bin", 0, 2, labels, 0, 0);
    cifar_file("c10b.bin", 2, 1, labels, 0, 0);
    files[0] = path("c10a.bin");
    files[1] = path("c10b.bin");
    CHECK(acn_data_cifar(ctx, &ds, files, 2, 0) == ACN_OK, "cifar-10: %s", acn_error(ctx));
    CHECK(ds.n == 3 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.classes == 10 && !ds.coarse, "cifar-10 shape");
    CHECK(ds.labels[0] == 0 && ds.labels[1] == 9 && ds.labels[2] == 4, "cifar-10 labels");
    CHECK(ds.u8[2 * 3072 + 5] == (unsigned char)(2 * 7 + 5) && ds.u8[1 * 3072 + 1024] == (unsigned char)(7 + 1024),
          "cifar-10 pixels in file order");
    acn_data_batch(&ds, idx, 2, x, y);
    CHECK(y[0] == 4 && y[1] == 0 && fabsf(x[5] - (float)(2 * 7 + 5) / 255.0f) < 1e-7f && x[3072] == 0.0f,
          "batch: labels %d %d, x[5] %g", y[0], y[1], (double)x[5]);
    acn_data_free(&ds);
    /* truncated by one byte, a label past 9, a file that is not there */
    cifar_file("c10cut.bin", 0, 2, labels, 0, 1);
    files[0] = path("c10cut.bin");
    CHECK(acn_data_cifar(ctx, &ds, files, 1, 0) == ACN_ERR_FORMAT && has("not a whole number of 3073-byte") &&
          ds.n == 0 && !ds.u8, "truncated: %s", acn_error(ctx));
    clear();
    cifar_file("c100.bin", 0, 2, fine, 1, 0);
    files[0] = path("c100.bin");
    CHECK(acn_data_cifar(ctx, &ds, files, 1, 0) == ACN_ERR_FORMAT && has("not a whole number"), "c100 as c10: %s",
          acn_error(ctx));
    clear();
    CHECK(acn_data_cifar(ctx, &ds, files, 1, 1) == ACN_OK && ds.n == 2 && ds.classes == 100 && ds.labels[0] == 57 &&
          ds.coarse && ds.coarse[0] == 11 && ds.labels[1] == 3 && ds.coarse[1] == 0 && ds.u8[3072 + 9] == 16,
          "cifar-100: %s", acn_error(ctx));
    acn_data_free(&ds);
    {
        int bad[1] = {37};
        cifar_file("c10bad.bin", 0, 1, bad, 0, 0);
        files[0] = path("c10bad.bin");
        CHECK(acn_data_cifar(ctx, &ds, files, 1, 0) == ACN_ERR_FORMAT && has("record 0 has label 37") &&
              has("CIFAR-100"), "bad label: %s", acn_error(ctx));
        clear();
    }
    files[0] = path("missing.bin");
    CHECK(acn_data_cifar(ctx, &ds, files, 1, 0) == ACN_ERR_IO && has("cannot open"), "%s", acn_error(ctx));
    clear();
}

static void be32(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static void test_idx(void)
{
    unsigned char img[16 + 12], lab[8 + 3], gz[4] = {0x1f, 0x8b, 8, 0};
    acn_dataset ds;
    int i;
    be32(img, 0x803); be32(img + 4, 3); be32(img + 8, 2); be32(img + 12, 2);
    for (i = 0; i < 12; i++) img[16 + i] = (unsigned char)(i * 20);
    be32(lab, 0x801); be32(lab + 4, 3);
    lab[8] = 7; lab[9] = 0; lab[10] = 3;
    put("img.idx", img, sizeof img);
    put("lab.idx", lab, sizeof lab);
    CHECK(acn_data_idx(ctx, &ds, path("img.idx"), path("lab.idx")) == ACN_OK, "idx: %s", acn_error(ctx));
    CHECK(ds.n == 3 && ds.c == 1 && ds.h == 2 && ds.w == 2 && ds.classes == 8 && ds.labels[0] == 7 &&
          ds.labels[2] == 3 && ds.u8[4 * 2 + 3] == 220, "idx values");
    acn_data_free(&ds);
    put("img.idx.gz", gz, sizeof gz);
    CHECK(acn_data_idx(ctx, &ds, path("img.idx.gz"), path("lab.idx")) == ACN_ERR_FORMAT && has("gzip-compressed") &&
          has("gunzip"), "gz: %s", acn_error(ctx));
    clear();
    put("img_cut.idx", img, sizeof img - 1);
    CHECK(acn_data_idx(ctx, &ds, path("img_cut.idx"), path("lab.idx")) == ACN_ERR_FORMAT && has("truncated"),
          "cut: %s", acn_error(ctx));
    clear();
    be32(lab + 4, 4);
    put("lab4.idx", lab, sizeof lab);
    CHECK(acn_data_idx(ctx, &ds, path("img.idx"), path("lab4.idx")) == ACN_ERR_FORMAT && has("lab4.idx") &&
          has("number of labels"), "count: %s", acn_error(ctx));
    clear();
    CHECK(acn_data_idx(ctx, &ds, path("lab.idx"), path("img.idx")) == ACN_ERR_FORMAT && has("not an IDX image file"),
          "swapped: %s", acn_error(ctx));
    clear();
}

static void test_csv(void)
{
    acn_dataset ds;
    float x[3];
    int y, i1 = 1;
    put_text("ok.csv", "1, 2,3,0\r\n\n4,5,6 ,2\n");
    CHECK(acn_data_csv(ctx, &ds, path("ok.csv"), 0.5f) == ACN_OK, "csv: %s", acn_error(ctx));
    CHECK(ds.n == 2 && ds.c == 3 && ds.classes == 3 && ds.labels[1] == 2 && ds.f32 && ds.f32[3] == 4.0f, "csv values");
    acn_data_batch(&ds, &i1, 1, x, &y);
    CHECK(y == 2 && x[0] == 2.0f && x[2] == 3.0f, "csv batch scaled");
    acn_data_free(&ds);
    put_text("nan.csv", "1,2,0\n1,x,1\n");
    CHECK(acn_data_csv(ctx, &ds, path("nan.csv"), 1.0f) == ACN_ERR_FORMAT && has("nan.csv:2: column 2 is not a number"),
          "%s", acn_error(ctx));
    clear();
    put_text("cols.csv", "1,2,0\n1,2,3,1\n");
    CHECK(acn_data_csv(ctx, &ds, path("cols.csv"), 1.0f) == ACN_ERR_FORMAT && has("cols.csv:2: 4 columns where the first line has 3"),
          "%s", acn_error(ctx));
    clear();
    put_text("label.csv", "1,2,0.5\n");
    CHECK(acn_data_csv(ctx, &ds, path("label.csv"), 1.0f) == ACN_ERR_FORMAT && has("label (last column) 0.5"),
          "%s", acn_error(ctx));
    clear();
    put_text("empty.csv", "\n\n");
    CHECK(acn_data_csv(ctx, &ds, path("empty.csv"), 1.0f) == ACN_ERR_FORMAT && has("no data lines"), "%s", acn_error(ctx));
    clear();
}

/* Labels too large for an int are refused before any cast (UBSan would
 * catch the cast), and so are infinite and out-of-float-range values. */
static void test_csv_ranges(void)
{
    acn_dataset ds;
    static const struct { const char *text, *want; } bad[] = {
        {"1,2,0\n1,2,3611117611\n", "big.csv:2: the label (last column) 3.61112e+09 is not a class number"},
        {"1,2,0\n1,2,1e999\n", "big.csv:2: column 3 is '1e999'; values must be finite"},
        {"1,2,-2147483649\n", "big.csv:1: the label (last column) -2.14748e+09 is not a class number"},
        {"1,2,1000001\n", "big.csv:1: the label (last column) 1e+06 is not a class number"},
        {"1,2,0\n3,inf,1\n", "big.csv:2: column 2 is 'inf'; values must be finite"},
        {"-inf,2,0\n", "big.csv:1: column 1 is '-inf'; values must be finite"},
        {"1,-Infinity,0\n", "big.csv:1: column 2 is '-Infinity'"},
        {"1,nan,0\n", "big.csv:1: column 2 is 'nan'"},
        {"1e39,2,0\n", "big.csv:1: column 1 is '1e39'; values must be finite numbers within float's range"},
        {"1,2,inf\n", "big.csv:1: column 3 is 'inf'"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_text("big.csv", bad[i].text);
        CHECK(acn_data_csv(ctx, &ds, path("big.csv"), 1.0f) == ACN_ERR_FORMAT && has(bad[i].want) && ds.n == 0 &&
              !ds.f32 && !ds.labels, "csv case %zu: %s", i, acn_error(ctx));
        clear();
    }
    /* the edges that are fine: the largest label, float's largest value */
    put_text("edge.csv", "3.4028234e38,-3.4028234e38,1000000\n");
    CHECK(acn_data_csv(ctx, &ds, path("edge.csv"), 1.0f) == ACN_OK && ds.n == 1 && ds.labels[0] == 1000000 &&
          ds.classes == 1000001 && ds.f32[0] == 3.4028234e38f && ds.f32[1] == -3.4028234e38f, "csv edges: %s",
          acn_error(ctx));
    acn_data_free(&ds);
}

/* A safetensors file of a header and data bytes. */
static void st_file(const char *name, const char *header, const unsigned char *data, size_t n)
{
    unsigned char b[1024];
    size_t h = strlen(header), k;
    for (k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(b + 8, header, h);
    if (n) memcpy(b + 8 + h, data, n);
    put(name, b, 8 + h + n);
}
/* Names that are not UTF-8, dtypes the format does not have, the format's
 * other dtypes kept with their sizes checked; the committed files load. */
static void test_safetensors(void)
{
    static const struct { const char *header; size_t n; const char *want; } bad[] = {
        {"{\"a\\u00e9\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "the name of header entry 1 (counting from 1) is not valid UTF-8"},
        {"{\"__metadata__\":{\"k\":\"v\"},\"ok\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"b\xc0\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2,
         "the name of header entry 3 (counting from 1) is not valid UTF-8"},      /* an overlong '/' */
        {"{\"\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "entry 1 (counting from 1) is not valid UTF-8"},                          /* a surrogate */
        {"{\"\xf4\x90\x80\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "entry 1 (counting from 1) is not valid UTF-8"},                          /* past U+10FFFF */
        {"{\"a\xc3\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "entry 1 (counting from 1) is not valid UTF-8"},                          /* cut short */
        {"{\"__metadata__\":{\"k\":\"\xfe\"}}", 0, "__metadata__ value of 'k' is not a string (or not UTF-8)"},
        {"{\"a\":{\"dtype\":\"X9\",\"shape\":[1],\"data_offsets\":[0,7]}}", 7, "'a': unknown dtype 'X9'"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'a': unknown dtype 'f32'"},
        {"{\"a\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4,
         "'a': 4 bytes for 3 elements of 1 bytes"},
        {"{\"a\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "'a': 4 bytes for 1 elements of 8 bytes"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "'a': the field 'shape' appears twice"},
    };
    static const char *const committed[] = {
        "tests/ref/ops.safetensors", "tests/ref/optim.safetensors", "tests/ref/autoaugment.safetensors",
        "tests/reference/mlp_relu.weights.safetensors", "tests/reference/mlp_relu.ref.safetensors",
        "tests/reference/mlp_gelu.weights.safetensors", "tests/reference/mixer.weights.safetensors",
        "tests/reference/mixer.ref.safetensors", "tests/reference/mixer_textbook.weights.safetensors",
        "tests/reference/vit.weights.safetensors", "tests/reference/vit.ref.safetensors",
        "tests/reference/bert.weights.safetensors", "tests/reference/bert.ref.safetensors"};
    unsigned char data[16] = {1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    acn_st st;
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_file("bad.safetensors", bad[i].header, data, bad[i].n);
        CHECK(acn_st_read(ctx, path("bad.safetensors"), &st) == ACN_ERR_FORMAT && has(bad[i].want) &&
              has("bad.safetensors") && st.n == 0 && !st.buf, "safetensors case %zu: %s", i, acn_error(ctx));
        clear();
    }
    /* well-formed UTF-8 (two, three and four bytes) and the format's other dtypes load, as ACN_DT_OTHER */
    st_file("other.safetensors", "{\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":{\"dtype\":\"BOOL\",\"shape\":[3],"
            "\"data_offsets\":[0,3]},\"u\":{\"dtype\":\"U16\",\"shape\":[2,1],\"data_offsets\":[3,7]},"
            "\"f\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[7,8]},"
            "\"x\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[8,9]}}", data, 9);
    CHECK(acn_st_read(ctx, path("other.safetensors"), &st) == ACN_OK && st.n == 4, "other dtypes: %s", acn_error(ctx));
    if (st.n == 4) {
        unsigned char b;
        const acn_st_entry *e = acn_st_find(&st, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        CHECK(e && e->dtype == ACN_DT_OTHER && e->end - e->begin == 3 && st.entries[1].dtype == ACN_DT_OTHER &&
              st.entries[1].ndim == 2 && st.entries[2].dtype == ACN_DT_OTHER, "other dtypes: kept as ACN_DT_OTHER");
        CHECK(acn_st_get(ctx, &st, "u", ACN_DT_U8, &b, 4) == ACN_ERR_FORMAT, "U16 is not read as U8");
        clear();
        CHECK(acn_st_get(ctx, &st, "x", ACN_DT_U8, &b, 1) == ACN_OK && b == 7, "a scalar U8 after them: %d", b);
        acn_st_free(&st);
    }
    clear();
    for (i = 0; i < sizeof committed / sizeof committed[0]; i++) {
        CHECK(acn_st_read(ctx, committed[i], &st) == ACN_OK && st.n > 0, "%s: %s", committed[i], acn_error(ctx));
        acn_st_free(&st);
        clear();
    }
}

/* Checkpoint state checked against its metadata and the objects it is
 * loaded into; every refusal leaves the parameters, the optimizer, the
 * sampler and the generator as they were. */
static acn_ctx *ck;
static acn_adamw ck_opt;
static acn_sampler ck_smp;
enum { CK_MAX = 256 }; /* ck_opt.n: the parameter block's floats, padding included */
static struct { float p[9], m[CK_MAX], v[CK_MAX]; int64_t ostep, epoch, pos; uint64_t rng; int order[10]; } ck_snap;
static void ck_take(void)
{
    int n, i;
    acn_tensor *p = acn_params(ck, &n);
    memcpy(ck_snap.p, p[0].data, 6 * sizeof(float));
    memcpy(ck_snap.p + 6, p[1].data, 3 * sizeof(float));
    memcpy(ck_snap.m, ck_opt.m, ck_opt.n * sizeof(float));
    memcpy(ck_snap.v, ck_opt.v, ck_opt.n * sizeof(float));
    ck_snap.ostep = ck_opt.step;
    ck_snap.epoch = ck_smp.epoch;
    ck_snap.pos = ck_smp.pos;
    ck_snap.rng = acn_ctx_rng(ck)->state;
    for (i = 0; i < 10; i++) ck_snap.order[i] = ck_smp.order[i];
}
static int ck_same(void)
{
    int n;
    acn_tensor *p = acn_params(ck, &n);
    return !memcmp(ck_snap.p, p[0].data, 6 * sizeof(float)) && !memcmp(ck_snap.p + 6, p[1].data, 3 * sizeof(float)) &&
           !memcmp(ck_snap.m, ck_opt.m, ck_opt.n * sizeof(float)) && !memcmp(ck_snap.v, ck_opt.v, ck_opt.n * sizeof(float)) &&
           ck_snap.ostep == ck_opt.step && ck_snap.epoch == ck_smp.epoch && ck_snap.pos == ck_smp.pos &&
           ck_snap.rng == acn_ctx_rng(ck)->state && !memcmp(ck_snap.order, ck_smp.order, sizeof ck_snap.order);
}
/* A state file as acn_save_checkpoint writes it, with one thing changed. */
enum { CK_GOOD, CK_STEP12, CK_EPOCH_MAX, CK_POS_NEG, CK_POS_BIG, CK_OSTEP_NEG, CK_M_SHAPE, CK_CURSOR_SHAPE,
       CK_STEP_I32, CK_NO_V, CK_SEED, CK_RNG_SHAPE, CK_NEG, CK_CASES };
static void ck_state(const char *name, int what)
{
    int64_t step = what == CK_NEG ? -1 : 13, rng = 4242, ostep = what == CK_OSTEP_NEG ? -1 : 13, cur[3] = {2, 4, 5};
    int32_t step32 = 13;
    float m[CK_MAX], v[CK_MAX];
    acn_st_item it[6];
    const char *kv[2] = {"step", "13"};
    int i, n = 0, nf = (int)ck_opt.n;
    for (i = 0; i < nf; i++) { m[i] = 0.5f * (float)i; v[i] = 0.25f * (float)i; }
    if (what == CK_STEP12) step = 12;
    if (what == CK_EPOCH_MAX) cur[0] = INT64_MAX;
    if (what == CK_POS_NEG) cur[1] = -7;
    if (what == CK_POS_BIG) cur[1] = 999999;
    if (what == CK_SEED) cur[2] = 6;
    if (what == CK_NEG) kv[1] = "-1";
    memset(it, 0, sizeof it);
    it[n].name = "step"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 1; it[n++].data = &step;
    if (what == CK_STEP_I32) { it[n - 1].dtype = ACN_DT_I32; it[n - 1].data = &step32; }
    it[n].name = "rng.state"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 1; it[n++].data = &rng;
    if (what == CK_RNG_SHAPE) { it[n - 1].shape[0] = 2; it[n - 1].data = cur; }
    it[n].name = "adamw.step"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 1; it[n++].data = &ostep;
    it[n].name = "adamw.m"; it[n].dtype = ACN_DT_F32; it[n].ndim = 1; it[n].shape[0] = nf; it[n++].data = m;
    if (what == CK_M_SHAPE) { it[n - 1].ndim = 2; it[n - 1].shape[0] = nf / 4; it[n - 1].shape[1] = 4; }
    if (what != CK_NO_V) {
        it[n].name = "adamw.v"; it[n].dtype = ACN_DT_F32; it[n].ndim = 1; it[n].shape[0] = nf; it[n++].data = v;
    }
    it[n].name = "sampler.cursor"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 3; it[n++].data = cur;
    if (what == CK_CURSOR_SHAPE) { it[n - 1].ndim = 2; it[n - 1].shape[0] = 1; it[n - 1].shape[1] = 3; }
    CHECK(acn_st_write_items(ctx, path(name), it, n, kv, 1) == ACN_OK, "writing %s: %s", name, acn_error(ctx));
}
static void test_checkpoint(void)
{
    char m_shape[120];
    const char *want[CK_CASES] = {
        NULL,
        "ck.state.safetensors: the step tensor holds 12 but the metadata says step 13",
        "ck.state.safetensors: the sampler's epoch 9223372036854775807 is outside [0, 2147483647]",
        "ck.state.safetensors: the sampler's position -7 is outside [0, 10]",
        "ck.state.safetensors: the sampler's position 999999 is outside [0, 10]",
        "ck.state.safetensors: AdamW's step is -1",
        m_shape,
        "ck.state.safetensors: 'sampler.cursor' is I64 (1, 3) where I64 (3) is expected",
        "ck.state.safetensors: 'step' is I32 (1) where I64 (1) is expected",
        "ck.state.safetensors has no 'adamw.v'",
        "the sampler was seeded with 5, the checkpoint with 6",
        "ck.state.safetensors: 'rng.state' is I64 (2) where I64 (1) is expected",
        "ck.state.safetensors: the step tensor holds -1 but the metadata says step -1, and a step is never negative",
    };
    int sw[2] = {2, 3}, sb[1] = {3}, sw2[2] = {3, 2}, i, idx[4], ok = 1;
    int64_t step = -5;
    acn_tensor *w, *b;
    acn_ctx *other;
    const char *kv[2] = {"step", "13"}, *kvneg[2] = {"step", "-1"};
    if (acn_ctx_new(&ck, NULL) || acn_ctx_new(&other, NULL)) { CHECK(0, "checkpoint: contexts"); return; }
    w = acn_param(ck, "a.weight", 2, sw);
    b = acn_param(ck, "a.bias", 1, sb);
    acn_adamw_init(ck, &ck_opt, 0.9f, 0.999f, 1e-8f, 0.0f);
    acn_sampler_init(ck, &ck_smp, 10, 4, 5, 0);
    CHECK(w && b && ck_opt.n >= 9 && ck_opt.n <= CK_MAX && ck_opt.n % 4 == 0 && acn_status_of(ck) == ACN_OK,
          "checkpoint: the model: %s (%zu floats)", acn_error(ck), ck_opt.n);
    if (!w || !b || ck_opt.n < 9 || ck_opt.n > CK_MAX || ck_opt.n % 4) { acn_ctx_free(ck); acn_ctx_free(other); return; }
    snprintf(m_shape, sizeof m_shape, "ck.state.safetensors: 'adamw.m' is F32 (%zu, 4) where F32 (%zu) is expected",
             ck_opt.n / 4, ck_opt.n);
    for (i = 0; i < 6; i++) w->data[i] = (float)(i + 1);
    for (i = 0; i < 3; i++) b->data[i] = (float)(10 + i);
    acn_save_params(ck, path("ck.safetensors"), kv, 1);
    /* the good state loads, and gives every value back */
    ck_state("ck.state.safetensors", CK_GOOD);
    for (i = 0; i < 6; i++) w->data[i] = 0.0f;
    acn_sampler_seek(&ck_smp, 7, 1);
    CHECK(acn_load_checkpoint(ck, path("ck.safetensors"), path("ck.state.safetensors"), &ck_opt, &ck_smp, &step) ==
          ACN_OK && step == 13, "checkpoint: the good pair: %s", acn_error(ck));
    for (i = 0; i < (int)ck_opt.n; i++) ok &= ck_opt.m[i] == 0.5f * (float)i && ck_opt.v[i] == 0.25f * (float)i;
    CHECK(ok && ck_opt.step == 13 && ck_smp.epoch == 2 && ck_smp.pos == 4 && acn_ctx_rng(ck)->state == 4242 &&
          w->data[5] == 6.0f && b->data[2] == 12.0f, "checkpoint: values restored");
    /* then each bad state: refused, naming the file, and nothing changed */
    acn_sampler_seek(&ck_smp, 1, 3);
    acn_sampler_next(&ck_smp, idx);
    acn_ctx_rng(ck)->state = 99;
    ck_opt.step = 21;
    ck_opt.m[3] = 7.0f;
    w->data[0] = -1.0f;
    acn_save_params(ck, path("ckneg.safetensors"), kvneg, 1);
    for (i = 1; i < CK_CASES; i++) {
        step = -5;
        ck_state("ck.state.safetensors", i);
        ck_take();
        CHECK(acn_load_checkpoint(ck, path(i == CK_NEG ? "ckneg.safetensors" : "ck.safetensors"),
                                  path("ck.state.safetensors"), &ck_opt, &ck_smp, &step) == ACN_ERR_FORMAT &&
              strstr(acn_error(ck), want[i]) && step == -5 && ck_same(), "checkpoint case %d: %s", i, acn_error(ck));
        acn_clear_error(ck);
    }
    /* weights of another shape with a good state: refused before the optimizer's moments are touched */
    ck_state("ck.state.safetensors", CK_GOOD);
    acn_param(other, "a.weight", 2, sw2);
    acn_param(other, "a.bias", 1, sb);
    acn_save_params(other, path("ckshape.safetensors"), kv, 1);
    ck_take();
    CHECK(acn_load_checkpoint(ck, path("ckshape.safetensors"), path("ck.state.safetensors"), &ck_opt, &ck_smp, &step) ==
          ACN_ERR_FORMAT && strstr(acn_error(ck), "ckshape.safetensors: 'a.weight' is in the file with another shape") &&
          ck_same(),
          "checkpoint: weights of another shape: %s", acn_error(ck));
    acn_clear_error(ck);
    /* without an optimizer or a sampler, their checks do not apply */
    ck_state("ck.state.safetensors", CK_POS_BIG);
    CHECK(acn_load_checkpoint(ck, path("ck.safetensors"), path("ck.state.safetensors"), NULL, NULL, &step) == ACN_OK &&
          step == 13 && acn_ctx_rng(ck)->state == 4242, "checkpoint: no sampler: %s", acn_error(ck));
    acn_adamw_free(&ck_opt);
    acn_sampler_free(&ck_smp);
    acn_ctx_free(other);
    acn_ctx_free(ck);
}

/* Subsets on ten examples labelled 0 1 2 0 1 2 0 1 2 0 (values = index). */
static void test_select(void)
{
    acn_dataset src, dst;
    int i, want1[6] = {0, 1, 2, 0, 1, 2}, want2[7] = {1, 0, 1, 0, 1, 0, 1}, keep[2] = {2, 0}, bad = 3;
    float v[10];
    memset(&src, 0, sizeof src);
    src.n = 10; src.c = src.h = src.w = 1; src.classes = 3; src.scale = 1.0f;
    src.f32 = v;
    src.labels = (int *)malloc(10 * sizeof(int));
    for (i = 0; i < 10; i++) { v[i] = (float)i; src.labels[i] = i % 3; }
    CHECK(acn_data_select(ctx, &src, &dst, 2, NULL, 0) == ACN_OK && dst.n == 6 && dst.classes == 3, "first 2 per class");
    for (i = 0; i < 6; i++) CHECK(dst.labels[i] == want1[i] && dst.f32[i] == (float)i, "k=2 example %d", i);
    acn_data_free(&dst);
    CHECK(acn_data_select(ctx, &src, &dst, -1, keep, 2) == ACN_OK && dst.n == 7 && dst.classes == 2, "classes {2, 0}");
    for (i = 0; i < 7; i++) CHECK(dst.labels[i] == want2[i], "classes {2, 0}: label %d is %d", i, dst.labels[i]);
    CHECK(dst.f32[1] == 2.0f && dst.f32[6] == 9.0f, "classes {2, 0}: file order");
    acn_data_free(&dst);
    CHECK(acn_data_select(ctx, &src, &dst, -1, &bad, 1) == ACN_ERR_ARG && has("class 3 is not among"), "%s", acn_error(ctx));
    clear();
    free(src.labels);
}

/* Shuffled batches: every example once an epoch, a new order each epoch,
 * the same order for the same seed, and an exact resume from the cursor. */
static void test_sampler(void)
{
    acn_sampler a, b;
    int idx[4], seen[10], k, i, e0[10], e1[10], got = 0, same = 1;
    CHECK(acn_sampler_init(ctx, &a, 10, 4, 5, 0) == ACN_OK, "%s", acn_error(ctx));
    memset(seen, 0, sizeof seen);
    k = acn_sampler_next(&a, idx); CHECK(k == 4, "batch 1: %d", k);
    for (i = 0; i < k; i++) { seen[idx[i]]++; e0[got++] = idx[i]; }
    k = acn_sampler_next(&a, idx); CHECK(k == 4, "batch 2: %d", k);
    for (i = 0; i < k; i++) { seen[idx[i]]++; e0[got++] = idx[i]; }
    k = acn_sampler_next(&a, idx); CHECK(k == 2, "batch 3: %d", k);
    for (i = 0; i < k; i++) { seen[idx[i]]++; e0[got++] = idx[i]; }
    CHECK(acn_sampler_next(&a, idx) == 0 && a.epoch == 1 && a.pos == 0, "end of epoch 0");
    for (i = 0; i < 10; i++) CHECK(seen[i] == 1, "example %d seen %d times", i, seen[i]);
    for (got = 0; (k = acn_sampler_next(&a, idx)) > 0;)
        for (i = 0; i < k; i++) e1[got++] = idx[i];
    for (i = 0; i < 10; i++) same &= e0[i] == e1[i];
    CHECK(got == 10 && !same, "epoch 1 has its own order");
    /* a second sampler with the seed, resumed at epoch 1, position 4 */
    acn_sampler_init(ctx, &b, 10, 4, 5, 0);
    acn_sampler_seek(&b, 1, 4);
    k = acn_sampler_next(&b, idx);
    CHECK(k == 4 && idx[0] == e1[4] && idx[3] == e1[7], "resume at (1, 4)");
    acn_sampler_free(&b);
    acn_sampler_init(ctx, &b, 10, 4, 5, 1);
    CHECK(acn_sampler_next(&b, idx) == 4 && acn_sampler_next(&b, idx) == 4 && acn_sampler_next(&b, idx) == 0,
          "drop_last skips the short batch");
    acn_sampler_free(&b);
    acn_sampler_free(&a);
    CHECK(acn_sampler_init(ctx, &a, 0, 4, 1, 0) == ACN_ERR_ARG, "no examples");
    clear();
    CHECK(acn_sampler_init(ctx, &a, 3, 4, 1, 1) == ACN_ERR_ARG && strstr(acn_error(ctx), "leaves no whole batch"),
          "drop_last with fewer examples than a batch: %s", acn_error(ctx));
    clear();
    { /* the low-data protocol: 1,000 examples in batches of 64 make 15 steps with drop_last, the same 15
         batches as without it, which then adds a 16th of 40 */
        static int with[16][64], without[16][64], kw[16], ko[16];
        int nw = 0, no = 0, e;
        acn_sampler_init(ctx, &a, 1000, 64, 0, 1);
        acn_sampler_init(ctx, &b, 1000, 64, 0, 0);
        while (nw < 16 && (kw[nw] = acn_sampler_next(&a, with[nw])) > 0) nw++;
        while (no < 16 && (ko[no] = acn_sampler_next(&b, without[no])) > 0) no++;
        for (e = 0, i = 0; i < 15; i++) e += kw[i] != 64 || ko[i] != 64 || memcmp(with[i], without[i], sizeof with[i]);
        CHECK(nw == 15 && no == 16 && ko[15] == 40 && e == 0, "drop_last: %d and %d batches, %d differ", nw, no, e);
        for (nw = 0; nw < 16 && (kw[nw] = acn_sampler_next(&a, with[nw])) > 0;) nw++;
        CHECK(nw == 15 && a.epoch == 2, "drop_last: the next epoch has 15 batches too (%d)", nw);
        acn_sampler_free(&a);
        acn_sampler_free(&b);
    }
}

/* A tiny TSV: words the(2) cat(2) a(1) dog(1) sat(1). With min_count 1
 * the ids are [PAD]..[MASK] = 0..4, then cat 5, the 6 (2 each, in
 * alphabetical order), a 7, dog 8, sat 9. */
static void test_text(void)
{
    acn_textset ts, dev;
    acn_vocab v;
    int tok[8], mask[8], lab[2], idx[2] = {0, 1};
    put_text("t.tsv", "label\tsentence\n1\tthe cat sat\n0\tthe  dog \r\n\n1\ta cat\n");
    CHECK(acn_text_tsv(ctx, &ts, path("t.tsv"), &v, 1, 1) == ACN_OK, "tsv: %s", acn_error(ctx));
    CHECK(ts.n == 3 && ts.classes == 2 && v.size == 10, "tsv: %d examples, vocab %d", ts.n, v.size);
    CHECK(!strcmp(v.words[5], "cat") && !strcmp(v.words[6], "the") && !strcmp(v.words[7], "a") &&
          !strcmp(v.words[9], "sat") && !strcmp(v.words[ACN_TOK_MASK], "[MASK]"), "vocab order");
    CHECK(acn_vocab_find(&v, "dog", 3) == 8 && acn_vocab_find(&v, "do", 2) == -1 && acn_vocab_find(&v, "[CLS]", 5) == 2,
          "find");
    CHECK(ts.start[1] - ts.start[0] == 3 && ts.ids[0] == 6 && ts.ids[1] == 5 && ts.ids[2] == 9 &&
          ts.start[2] - ts.start[1] == 2 && ts.ids[4] == 8, "ids");
    acn_text_batch(&ts, idx, 2, 4, tok, mask, lab);
    CHECK(tok[0] == ACN_TOK_CLS && tok[1] == 6 && tok[3] == 9 && mask[3] == 1 && tok[4] == ACN_TOK_CLS &&
          tok[6] == 8 && tok[7] == ACN_TOK_PAD && mask[7] == 0 && lab[0] == 1 && lab[1] == 0, "batch rows");
    /* another split with this vocabulary: unknown words become [UNK] */
    put_text("d.tsv", "label\tcontent\n0\tthe bird sat\n");
    CHECK(acn_text_tsv(ctx, &dev, path("d.tsv"), &v, 0, 1) == ACN_OK && dev.n == 1 && dev.ids[0] == 6 &&
          dev.ids[1] == ACN_TOK_UNK && dev.ids[2] == 9, "dev: %s", acn_error(ctx));
    acn_text_free(&dev);
    acn_text_free(&ts);
    acn_vocab_free(&v);
    CHECK(acn_text_tsv(ctx, &ts, path("t.tsv"), &v, 1, 2) == ACN_OK && v.size == 7 && ts.ids[2] == ACN_TOK_UNK,
          "min_count 2: vocab %d", v.size);
    acn_text_free(&ts);
    acn_vocab_free(&v);
    put_text("notab.tsv", "label\tsentence\n1 the cat\n");
    CHECK(acn_text_tsv(ctx, &ts, path("notab.tsv"), &v, 1, 1) == ACN_ERR_FORMAT && has("notab.tsv:2: expected"),
          "%s", acn_error(ctx));
    clear();
    put_text("badlabel.tsv", "label\tsentence\nx\tthe cat\n");
    CHECK(acn_text_tsv(ctx, &ts, path("badlabel.tsv"), &v, 1, 1) == ACN_ERR_FORMAT && has("the label 'x'"),
          "%s", acn_error(ctx));
    clear();
    /* GLUE's own column order, "sentence<TAB>label" (trailing spaces as GLUE has them): the same set */
    put_text("glue.tsv", "sentence\tlabel\nthe cat sat \t1\nthe  dog \t0\r\n\na cat\t1\n");
    CHECK(acn_text_tsv(ctx, &ts, path("glue.tsv"), &v, 1, 1) == ACN_OK && ts.n == 3 && v.size == 10 &&
          ts.labels[0] == 1 && ts.labels[1] == 0 && ts.labels[2] == 1 && ts.start[1] - ts.start[0] == 3 &&
          ts.ids[0] == 6 && ts.ids[1] == 5 && ts.ids[2] == 9 && ts.ids[4] == 8, "GLUE column order: %s", acn_error(ctx));
    acn_text_free(&ts);
    acn_vocab_free(&v);
    put_text("glue_bad.tsv", "sentence\tlabel\nthe cat\tpositive\n");
    CHECK(acn_text_tsv(ctx, &ts, path("glue_bad.tsv"), &v, 1, 1) == ACN_ERR_FORMAT && has("the label 'positive'"),
          "%s", acn_error(ctx));
    clear();
    put_text("glue_notab.tsv", "sentence\tlabel\nthe cat 1\n");
    CHECK(acn_text_tsv(ctx, &ts, path("glue_notab.tsv"), &v, 1, 1) == ACN_ERR_FORMAT &&
          has("glue_notab.tsv:2: expected \"text<TAB>label\""), "%s", acn_error(ctx));
    clear();
}

/* Lines without words, text that spells the special tokens, and labels
 * other than 0 and 1. */
static void test_text_hardening(void)
{
    acn_textset ts, dev;
    acn_vocab v;
    int tok[10], mask[10], idx[1] = {0}, i, masks = 0;
    /* no words at all: no vocabulary beyond the special tokens (and no qsort of nothing) */
    put_text("nowords.tsv", "label\tsentence\n1\t\n0\t   \r\n");
    CHECK(acn_text_tsv(ctx, &ts, path("nowords.tsv"), &v, 1, 1) == ACN_OK && ts.n == 2 && ts.classes == 2 &&
          v.size == ACN_TOK_SPECIAL && ts.start[0] == 0 && ts.start[1] == 0 && ts.start[2] == 0 && ts.labels[0] == 1 &&
          ts.labels[1] == 0, "no words: %s (n %d, vocab %d)", acn_error(ctx), ts.n, v.size);
    acn_text_batch(&ts, idx, 1, 3, tok, mask, NULL);
    CHECK(tok[0] == ACN_TOK_CLS && tok[1] == ACN_TOK_PAD && mask[1] == 0, "no words: [CLS] then padding");
    acn_text_free(&ts);
    acn_vocab_free(&v);
    /* [MASK], [PAD], [CLS], [SEP], [UNK] in the text: [UNK], never a word of the vocabulary */
    put_text("special.tsv", "label\tsentence\n1\t[MASK] cat [PAD]\n0\t[CLS] [SEP] [UNK] cat [MASK]x\n");
    CHECK(acn_text_tsv(ctx, &ts, path("special.tsv"), &v, 1, 1) == ACN_OK && ts.n == 2, "special: %s", acn_error(ctx));
    CHECK(v.size == ACN_TOK_SPECIAL + 2 && !strcmp(v.words[5], "cat") && !strcmp(v.words[6], "[MASK]x"),
          "special: vocab of %d, the words cat and [MASK]x only", v.size);
    for (i = 0; i < v.size; i++) masks += !strcmp(v.words[i], "[MASK]") + !strcmp(v.words[i], "[PAD]");
    CHECK(masks == 2 && acn_vocab_find(&v, "[MASK]", 6) == ACN_TOK_MASK && acn_vocab_find(&v, "[PAD]", 5) == ACN_TOK_PAD,
          "special: [MASK] and [PAD] once each, at their ids");
    CHECK(ts.start[1] == 3 && ts.ids[0] == ACN_TOK_UNK && ts.ids[1] == 5 && ts.ids[2] == ACN_TOK_UNK &&
          ts.ids[3] == ACN_TOK_UNK && ts.ids[4] == ACN_TOK_UNK && ts.ids[5] == ACN_TOK_UNK && ts.ids[6] == 5 &&
          ts.ids[7] == 6, "special: the tokens' spellings read as [UNK]");
    acn_text_batch(&ts, idx, 1, 5, tok, mask, NULL);
    CHECK(tok[1] == ACN_TOK_UNK && tok[3] == ACN_TOK_UNK && mask[3] == 1 && tok[4] == ACN_TOK_PAD && mask[4] == 0,
          "special: '[PAD]' in the text is a token, not padding");
    /* with build 0 (another split through this vocabulary) the same */
    put_text("special_dev.tsv", "label\tsentence\n1\t[PAD] cat [SEP]\n");
    CHECK(acn_text_tsv(ctx, &dev, path("special_dev.tsv"), &v, 0, 1) == ACN_OK && dev.ids[0] == ACN_TOK_UNK &&
          dev.ids[1] == 5 && dev.ids[2] == ACN_TOK_UNK, "special, build 0: %s", acn_error(ctx));
    acn_text_free(&dev);
    /* labels: 0 and 1 only, refused at load with the file and line */
    put_text("lab2.tsv", "label\tsentence\n1\tcat\n0\tdog\n2\tbird\n");
    CHECK(acn_text_tsv(ctx, &dev, path("lab2.tsv"), &v, 0, 1) == ACN_ERR_FORMAT &&
          has("lab2.tsv:4: the label 2 is not 0 or 1") && dev.n == 0 && !dev.ids, "label 2: %s", acn_error(ctx));
    clear();
    put_text("labneg.tsv", "sentence\tlabel\ncat\t-1\n");
    CHECK(acn_text_tsv(ctx, &dev, path("labneg.tsv"), &v, 0, 1) == ACN_ERR_FORMAT &&
          has("labneg.tsv:2: the label -1 is not 0 or 1"), "label -1: %s", acn_error(ctx));
    clear();
    put_text("labbig.tsv", "label\tsentence\n99999999999999\tcat\n");
    CHECK(acn_text_tsv(ctx, &dev, path("labbig.tsv"), &v, 0, 1) == ACN_ERR_FORMAT &&
          has("labbig.tsv:2: the label 99999999999999 is not 0 or 1"), "label 99999999999999: %s", acn_error(ctx));
    clear();
    /* a file of one class still has two (the dev split must match the model) */
    put_text("zeros.tsv", "label\tsentence\n0\tcat\n0\tdog\n");
    CHECK(acn_text_tsv(ctx, &dev, path("zeros.tsv"), &v, 0, 1) == ACN_OK && dev.classes == 2 && dev.ids[0] == 5 &&
          dev.ids[1] == ACN_TOK_UNK, "one class: %s", acn_error(ctx));
    acn_text_free(&dev);
    /* a NUL byte */
    put("nul.tsv", (const unsigned char *)"label\tsentence\n1\tcat\n1\tc\0t\n", 27);
    CHECK(acn_text_tsv(ctx, &dev, path("nul.tsv"), &v, 0, 1) == ACN_ERR_FORMAT && has("nul.tsv:3: a NUL byte"),
          "NUL: %s", acn_error(ctx));
    clear();
    acn_text_free(&ts);
    acn_vocab_free(&v);
}

/* SST-2 as the project ships it in ../shared: 67,349 training sentences, 872 for dev;
 * the vocabulary of the training split, then the dev split through it. */
static void test_sst2(void)
{
    acn_textset train, dev;
    acn_vocab v;
    FILE *f = fopen("../shared/data/sst2/train.tsv", "rb");
    size_t unk = 0, i;
    if (!f) {
        printf("sst2: ../shared/data/sst2 is not here; skipped\n");
        return;
    }
    fclose(f);
    CHECK(acn_text_tsv(ctx, &train, "../shared/data/sst2/train.tsv", &v, 1, 1) == ACN_OK, "%s", acn_error(ctx));
    CHECK(acn_text_tsv(ctx, &dev, "../shared/data/sst2/dev.tsv", &v, 0, 1) == ACN_OK, "%s", acn_error(ctx));
    /* the figures below were counted independently in Python from the same files */
    CHECK(train.n == 67349 && dev.n == 872 && train.classes == 2 && v.size == 14822, "sst2: %d train, %d dev, vocab %d",
          train.n, dev.n, v.size);
    CHECK(!strcmp(v.words[5], "the") && !strcmp(v.words[6], ",") && !strcmp(v.words[7], "a"), "most frequent words");
    for (i = 0; i < dev.start[dev.n]; i++) unk += dev.ids[i] == ACN_TOK_UNK;
    CHECK(unk == 1067 && dev.start[dev.n] == 17046, "sst2 dev: %zu of %zu words unknown", unk, dev.start[dev.n]);
    printf("sst2: %d train and %d dev sentences, vocabulary %d, %zu of %zu dev words unknown\n", train.n, dev.n, v.size,
           unk, dev.start[dev.n]);
    acn_text_free(&train);
    acn_text_free(&dev);
    acn_vocab_free(&v);
}

/* Augmentation, on images whose pixel (k, y, x) of image i is 1 + i + 10 k + 100 y + 1000 x. */
static float pix(int i, int k, int y, int x) { return (float)(1 + i + 10 * k + 100 * y + 1000 * x); }
static void fill(float *x, int b, int c, int h, int w)
{
    int i, k, y, xx;
    for (i = 0; i < b; i++)
        for (k = 0; k < c; k++)
            for (y = 0; y < h; y++)
                for (xx = 0; xx < w; xx++) x[(((size_t)i * c + k) * h + y) * w + xx] = pix(i, k, y, xx);
}
static void test_augment(void)
{
    enum { B = 6, C = 2, H = 7, W = 9 };
    static float x[B * C * H * W], big[100 * 3 * 32 * 32];
    acn_rng r, r0;
    int i, k, y, xx, dy, dx, shifts = 0, seen_shift[9][9], ok;
    acn_rng_seed(&r, 11);
    /* crop: each image is exactly its original shifted by one (dy, dx) in [-4, 4], zeros outside */
    memset(seen_shift, 0, sizeof seen_shift);
    for (k = 0; k < 20; k++) {
        fill(x, B, C, H, W);
        acn_aug_crop(&r, x, B, C, H, W, 4);
        for (i = 0; i < B; i++) {
            int found = 0;
            for (dy = -4; dy <= 4 && !found; dy++)
                for (dx = -4; dx <= 4 && !found; dx++) {
                    int kk, good = 1;
                    for (kk = 0; kk < C && good; kk++)
                        for (y = 0; y < H && good; y++)
                            for (xx = 0; xx < W && good; xx++) {
                                int sy = y + dy, sx = xx + dx;
                                float want = sy >= 0 && sy < H && sx >= 0 && sx < W ? pix(i, kk, sy, sx) : 0.0f;
                                good = x[(((size_t)i * C + kk) * H + y) * W + xx] == want;
                            }
                    if (good) { found = 1; if (!seen_shift[dy + 4][dx + 4]++) shifts++; }
                }
            CHECK(found, "crop: image %d is no shift of its original", i);
        }
    }
    CHECK(shifts > 40, "crop: only %d of the 81 shifts in 120 draws", shifts);
    /* flip: each image is itself or its mirror, about half mirrored (180
     * images: 90 expected, sd 6.7); the same draws again restore it */
    for (shifts = 0, k = 0, ok = 1; shifts < 30; shifts++) {
        fill(x, B, C, H, W);
        r0 = r;
        acn_aug_flip(&r, x, B, C, H, W);
        for (i = 0; i < B; i++) {
            int mirror = 1, same = 1;
            for (y = 0; y < H; y++)
                for (xx = 0; xx < W; xx++) {
                    float v = x[(((size_t)i * C + 1) * H + y) * W + xx];
                    same &= v == pix(i, 1, y, xx);
                    mirror &= v == pix(i, 1, y, W - 1 - xx);
                }
            ok &= same || mirror;
            k += mirror;
        }
    }
    CHECK(ok && k > 60 && k < 120, "flip: %d of 180 mirrored", k);
    acn_aug_flip(&r0, x, B, C, H, W);
    for (i = 0, ok = 1; i < B * C * H * W; i++) ok &= x[i] == pix(i / (C * H * W), i / (H * W) % C, i / W % H, i % W);
    CHECK(ok, "flip twice with the same draws restores the batch");
    /* normalize */
    {
        float m[2] = {1.0f, 2.0f}, sd[2] = {0.5f, 4.0f};
        fill(x, B, C, H, W);
        acn_aug_normalize(x, B, C, H, W, m, sd);
        CHECK(x[0] == (pix(0, 0, 0, 0) - 1.0f) / 0.5f && x[(size_t)H * W + 5] == (pix(0, 1, 0, 5) - 2.0f) / 4.0f, "normalize");
    }
    /* salt and pepper at p = 0.2 on 100 32 x 32 images: about 10% each */
    {
        size_t n = 100 * 32 * 32, j, salt = 0, pepper = 0;
        for (j = 0; j < 3 * n; j++) big[j] = 0.5f;
        acn_aug_salt_pepper(&r, big, 100, 3, 32, 32, 0.2f, 0.0f, 1.0f);
        for (i = 0; i < 100; i++)
            for (j = 0; j < 1024; j++) {
                float v0 = big[((size_t)i * 3) * 1024 + j], v2 = big[((size_t)i * 3 + 2) * 1024 + j];
                salt += v0 == 1.0f && v2 == 1.0f;
                pepper += v0 == 0.0f && v2 == 0.0f;
            }
        CHECK(fabs((double)salt / n - 0.1) < 0.006 && fabs((double)pepper / n - 0.1) < 0.006,
              "salt %.4f pepper %.4f of pixels", (double)salt / n, (double)pepper / n);
    }
    /* Gaussian noise */
    {
        size_t n = 200000, j;
        double s = 0, s2 = 0;
        static float z[200000];
        memset(z, 0, sizeof z);
        acn_aug_gaussian(&r, z, n, 0.4f);
        for (j = 0; j < n; j++) { s += z[j]; s2 += (double)z[j] * z[j]; }
        CHECK(fabs(s / n) < 0.005 && fabs(sqrt(s2 / n) - 0.4) < 0.005, "gaussian sd %g", sqrt(s2 / n));
    }
    /* Beta: mean a/(a+b), variance ab/((a+b)^2 (a+b+1)) */
    {
        static const float ab[3][2] = {{2.0f, 5.0f}, {1.0f, 1.0f}, {0.5f, 0.5f}};
        int t, j, n = 40000;
        for (t = 0; t < 3; t++) {
            double s = 0, s2 = 0, a = ab[t][0], bb = ab[t][1], mean = a / (a + bb), var = a * bb / ((a + bb) * (a + bb) * (a + bb + 1));
            for (j = 0; j < n; j++) { double v = acn_rng_beta(&r, ab[t][0], ab[t][1]); s += v; s2 += v * v; }
            CHECK(fabs(s / n - mean) < 0.006 && fabs(s2 / n - (s / n) * (s / n) - var) < 0.004, "beta(%g, %g): mean %g var %g",
                  a, bb, s / n, s2 / n - (s / n) * (s / n));
        }
    }
    /* CutMix: image i is all (i + 1); with p = 1 the box of image i comes from image b-1-i */
    {
        int yl[B] = {0, 1, 2, 3, 4, 5}, box[4];
        float t[B * 6], lam;
        for (i = 0; i < B * C * H * W; i++) x[i] = (float)(i / (C * H * W) + 1);
        lam = acn_aug_cutmix(&r, x, yl, B, C, H, W, 6, 1.0f, 1.0f, t, box);
        CHECK(lam == 1.0f - (float)((box[2] - box[0]) * (box[3] - box[1])) / (float)(H * W), "lambda from the clipped box");
        for (i = 0, ok = 1; i < B; i++)
            for (k = 0; k < C; k++)
                for (y = 0; y < H; y++)
                    for (xx = 0; xx < W; xx++) {
                        int in = y >= box[0] && y < box[2] && xx >= box[1] && xx < box[3];
                        ok &= x[(((size_t)i * C + k) * H + y) * W + xx] == (float)((in ? B - 1 - i : i) + 1);
                    }
        CHECK(ok, "cutmix: box (%d, %d)-(%d, %d) from the partner image", box[0], box[1], box[2], box[3]);
        CHECK(t[0] == lam && t[5] == 1.0f - lam && t[6 + 1] == lam && t[6 + 4] == 1.0f - lam, "soft targets");
        lam = acn_aug_cutmix(&r, x, yl, B, C, H, W, 6, 0.0f, 1.0f, t, NULL);
        CHECK(lam == 1.0f && t[0] == 1.0f && t[5] == 0.0f, "p = 0: no mix, one-hot targets");
    }
}

/* The UCI digits as the project ships them in ../shared (1,797 8 x 8 images, values 0..16). */
/* AutoAugment against torchvision 0.14 on PIL images (tests/ref/make_aa_refs.py):
 * the policy table, the magnitude bins, and every operation byte for byte. */
static const char *refdir = "tests/ref";
static void test_autoaugment(void)
{
    char file[300];
    acn_st st;
    float policy[25 * 2 * 3], mags[14 * 10], sgn[14], cases[64 * 2];
    unsigned char imgs[2 * 3072], ref[2 * 3072], img[3072], tmp[2 * 3072];
    const acn_st_entry *ce;
    int s, k, op, bin, n, i, bad_policy = 0, bad_mag = 0;
    snprintf(file, sizeof file, "%s/autoaugment.safetensors", refdir);
    if (acn_st_read(ctx, file, &st)) {
        CHECK(0, "autoaugment: %s", acn_error(ctx));
        clear();
        return;
    }
    ce = acn_st_find(&st, "cases");
    n = ce ? (int)ce->shape[0] : 0;
    CHECK(n > 40 && n <= 64, "autoaugment: %d cases in the reference file", n);
    if (n < 1 || n > 64 || acn_st_get_f32(ctx, &st, "policy", policy, 150) || acn_st_get_f32(ctx, &st, "magnitudes", mags, 140) ||
        acn_st_get_f32(ctx, &st, "signed", sgn, 14) || acn_st_get_f32(ctx, &st, "cases", cases, (size_t)n * 2) ||
        acn_st_get(ctx, &st, "images", ACN_DT_U8, imgs, sizeof imgs)) {
        CHECK(0, "autoaugment: reading the reference file: %s", acn_error(ctx));
        clear();
        acn_st_free(&st);
        return;
    }
    for (s = 0; s < 25; s++)
        for (k = 0; k < 2; k++) {
            float p;
            const float *e = policy + (s * 2 + k) * 3;
            acn_aa_cifar10_step(s, k, &op, &p, &bin);
            if (op != (int)e[0] || p != e[1] || bin != (int)e[2]) bad_policy++;
        }
    CHECK(bad_policy == 0, "autoaugment: %d of 50 policy steps differ from torchvision's", bad_policy);
    CHECK(!acn_aa_cifar10_step(25, 0, NULL, NULL, NULL), "autoaugment: sub-policy 25 does not exist");
    for (op = 0; op < ACN_AA_COUNT; op++)
        for (bin = 0; bin < 10; bin++) {
            int is_signed;
            double m = acn_aa_magnitude(op, bin, 32, 32, &is_signed);
            if ((float)m != mags[op * 10 + bin] || is_signed != (int)sgn[op]) {
                bad_mag++;
                fprintf(stderr, "  %s bin %d: %.9g, torchvision %.9g\n", acn_aa_name(op), bin, m, mags[op * 10 + bin]);
            }
        }
    CHECK(bad_mag == 0, "autoaugment: %d magnitude bins differ from torchvision's", bad_mag);
    for (i = 0; i < n; i++) {
        char name[32];
        int diff = 0, im;
        size_t j;
        op = (int)cases[2 * i];
        snprintf(name, sizeof name, "case.%d", i);
        if (acn_st_get(ctx, &st, name, ACN_DT_U8, ref, sizeof ref)) { CHECK(0, "%s", acn_error(ctx)); clear(); continue; }
        for (im = 0; im < 2; im++) {
            memcpy(img, imgs + im * 3072, 3072);
            acn_aa_apply(op, (double)cases[2 * i + 1], img, 3, 32, 32, tmp);
            for (j = 0; j < 3072; j++) diff += img[j] != ref[im * 3072 + j];
        }
        CHECK(diff == 0, "autoaugment: %s(%g): %d of 6144 bytes differ from torchvision's", acn_aa_name(op),
              cases[2 * i + 1], diff);
    }
    acn_st_free(&st);

    /* The whole policy: the share of images left unchanged is what the
     * table predicts, sub-policy by sub-policy (each equally likely, each
     * step applied with its probability, signs at random), using which of
     * the operations leave the dim test image as it was. */
    {
        const unsigned char *im = imgs + 3072;
        double expect = 0.0;
        int same = 0, trials = 4000, t;
        acn_rng r;
        float *x = (float *)malloc(sizeof(float) * 3072 * 50);
        for (s = 0; s < 25; s++) {
            int a;
            for (a = 0; a < 4; a++) { /* which steps apply */
                double pa = 1.0;
                int sg, unchanged = 0;
                for (k = 0; k < 2; k++) {
                    float p;
                    acn_aa_cifar10_step(s, k, &op, &p, &bin);
                    pa *= (a >> k & 1) ? p : 1.0 - p;
                }
                if (pa == 0.0) continue;
                for (sg = 0; sg < 4; sg++) { /* the two signs, each 1/2 */
                    memcpy(img, im, 3072);
                    for (k = 0; k < 2; k++) {
                        int is_signed;
                        double m;
                        if (!(a >> k & 1)) continue;
                        acn_aa_cifar10_step(s, k, &op, NULL, &bin);
                        m = bin < 0 ? 0.0 : acn_aa_magnitude(op, bin, 32, 32, &is_signed);
                        if (bin >= 0 && is_signed && !(sg >> k & 1)) m = -m;
                        acn_aa_apply(op, m, img, 3, 32, 32, tmp);
                    }
                    unchanged += !memcmp(img, im, 3072);
                }
                expect += pa * unchanged / 4.0 / 25.0;
            }
        }
        acn_rng_seed(&r, 11);
        for (t = 0; t < trials; t += 50) {
            size_t j;
            int b;
            for (b = 0; b < 50; b++)
                for (j = 0; j < 3072; j++) x[b * 3072 + j] = (float)im[j] / 255.0f;
            acn_aug_autoaugment(&r, x, 50, 3, 32, 32, tmp);
            for (b = 0; b < 50; b++) {
                int eq = 1;
                for (j = 0; j < 3072; j++) eq &= x[b * 3072 + j] == (float)im[j] / 255.0f;
                same += eq;
            }
        }
        {
            double got = (double)same / trials, sd = sqrt(expect * (1 - expect) / trials);
            CHECK(expect > 0.1 && expect < 0.9 && fabs(got - expect) < 4 * sd,
                  "autoaugment: %.4f of images unchanged, the policy predicts %.4f (sd %.4f)", got, expect, sd);
        }
        free(x);
    }
}

/* The named recipes: their settings, and the soft targets with CutMix and
 * label smoothing folded in. */
static void test_recipes(void)
{
    acn_recipe rc;
    acn_rng r;
    float x[8 * 3 * 8 * 8], t[8 * 4];
    int y[8] = {0, 1, 2, 3, 0, 1, 2, 3}, i, k, ok = 1;
    unsigned char scratch[2 * 3 * 8 * 8];
    CHECK(acn_recipe_get("paper", &rc) == ACN_OK && rc.crops == 2 && rc.pad == 4 && !rc.flip && rc.autoaugment &&
          rc.cutmix_p == 0.5f && rc.cutmix_beta == 1.0f && rc.smoothing == 0.1f && rc.normalize &&
          rc.mean[0] == 0.4914f && rc.std[2] == 0.2616f, "recipe paper: docs/acn.md, 'Training settings'");
    CHECK(acn_recipe_get("simple", &rc) == ACN_OK && rc.crops == 1 && rc.flip && !rc.autoaugment &&
          rc.cutmix_p == 0.0f && rc.smoothing == 0.1f, "recipe simple");
    CHECK(acn_recipe_get("fancy", &rc) == ACN_ERR_ARG, "recipe: an unknown name is refused");
    acn_recipe_get("paper", &rc);
    rc.cutmix_p = 1.0f; /* always mix: targets hold lambda and 1 - lambda, smoothed */
    acn_rng_seed(&r, 3);
    for (i = 0; i < (int)(sizeof x / sizeof *x); i++) x[i] = (float)(i % 256) / 255.0f;
    {
        float lam = acn_recipe_apply(&rc, &r, x, y, 8, 3, 8, 8, 4, t, scratch);
        for (i = 0; i < 8; i++) {
            float sum = 0.0f;
            for (k = 0; k < 4; k++) {
                float want = 0.9f * ((k == y[i] ? lam : 0.0f) + (k == y[7 - i] ? 1.0f - lam : 0.0f)) + 0.025f;
                ok &= fabsf(t[i * 4 + k] - want) < 1e-6f;
                sum += t[i * 4 + k];
            }
            ok &= fabsf(sum - 1.0f) < 1e-6f;
        }
        CHECK(ok && lam > 0.0f && lam <= 1.0f, "recipe: soft targets 0.9 (lam onehot + (1-lam) onehot') + 0.1/4 (lam %g)", lam);
    }
    {
        float before = x[0];
        CHECK(acn_recipe_apply(&rc, &r, x, y, 1, 4, 4, 4, 4, t, scratch) == -1.0f && x[0] == before,
              "recipe: 4 channels are refused (-1), x untouched");
    }
}

static void test_digits(void)
{
    acn_dataset ds;
    FILE *f = fopen("../shared/data/digits/digits.csv", "rb");
    size_t i, counts[10] = {0};
    float mx = 0.0f;
    if (!f) {
        printf("digits: ../shared/data/digits/digits.csv is not here; skipped\n");
        return;
    }
    fclose(f);
    CHECK(acn_data_csv(ctx, &ds, "../shared/data/digits/digits.csv", 1.0f / 16.0f) == ACN_OK, "%s", acn_error(ctx));
    CHECK(ds.n == 1797 && ds.c == 64 && ds.classes == 10, "digits: %d examples of %d, %d classes", ds.n, ds.c, ds.classes);
    for (i = 0; i < (size_t)ds.n * 64; i++) if (ds.f32[i] * ds.scale > mx) mx = ds.f32[i] * ds.scale;
    for (i = 0; i < (size_t)ds.n; i++) counts[ds.labels[i]]++;
    CHECK(mx == 1.0f && counts[0] > 170 && counts[9] > 170, "digits: max %g, %zu zeros, %zu nines", (double)mx,
          counts[0], counts[9]);
    acn_data_free(&ds);
}

int main(int argc, char **argv)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0 || acn_ctx_new(&ctx, NULL)) return 1;
    test_cifar();
    test_idx();
    test_csv();
    test_csv_ranges();
    test_safetensors();
    test_checkpoint();
    test_select();
    test_sampler();
    test_text();
    test_text_hardening();
    test_sst2();
    test_augment();
    if (argc > 1) refdir = argv[1];
    test_autoaugment();
    test_recipes();
    test_digits();
    acn_ctx_free(ctx);
    return t_done("data");
}
