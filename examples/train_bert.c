/* Pretrain a small BERT (the authors' AC-BERT block, docs/models.md, "BERT (AC-BERT)") with
 * masked-language modelling on the SST-2 training sentences, then fine-tune
 * it on their sentiment labels, and report the dev accuracy of the head
 * after every block.
 *
 *   cc -O2 examples/train_bert.c -o train_bert -lm -lpthread
 *   ./train_bert --data-dir data/sst2 --save runs/bert
 *   ./train_bert --help
 *
 * Phase 1 (MLM): 15% of the words of each sentence are chosen; of those 80%
 * become [MASK], 10% a random word, 10% stay; the loss is the cross-entropy
 * at the chosen positions. Phase 2 (classification): the pooler (dense +
 * tanh on [CLS]) and a Linear read the sum of the blocks' outputs (ACN) or
 * the last block's (residual, plain). Each phase has its own AdamW and
 * warmup-cosine schedule. Ctrl-C saves (with --save) and exits; --resume
 * continues bit for bit, in either phase. docs/training.md has the details.
 */
#define ACN_IMPLEMENTATION
#include "../acn.h" /* in your project: "acn.h" */
#include "train.h"

/* A metadata value of a checkpoint's weights file, copied into buf ("" if none). */
static void meta_get(acn_ctx *ctx, const char *path, const char *key, char *buf, size_t n)
{
    acn_st st;
    buf[0] = 0;
    if (acn_st_read(ctx, path, &st)) { acn_clear_error(ctx); return; }
    if (acn_st_meta(&st, key)) snprintf(buf, n, "%s", acn_st_meta(&st, key));
    acn_st_free(&st);
}

enum { PHASE_MLM, PHASE_CLS };
static const char *const phase_name[2] = {"mlm", "cls"};

typedef struct bert_opts {
    const char *data_dir, *wiring, *save, *resume, *log, *weights;
    int width, depth, heads, mlp, seq, min_count, batch, seed, threads, save_every, limit, stop_after, force_resume,
        eval_only;
    int epochs[2], warmup[2];
    float lr[2], wd, clip, dropout, mask_p;
} bert_opts;

typedef struct bert_run {
    acn_ctx *ctx;
    acn_bert m;
    acn_vocab vocab;
    acn_textset train, dev;
    bert_opts o;
    run_meta meta;        /* the model's settings (must match on --resume)   */
    run_meta train_meta;  /* the training's (compared on --resume, but the epochs) */
    const char *prog;
    int *tok, *mask, *lab, *idx, *mlm_lab;
    int *rows, *row_lab;  /* (B*T) the masked positions and their words */
    FILE *log;
    int log_record;   /* the log has the columns cpu_model and acn_version (one begun by an older version not) */
    long steps_run;   /* steps run by this process, both phases */
    long saved_step;  /* the step of the last checkpoint written or resumed from, or -1 */
    long saves;       /* checkpoints written by this process */
} bert_run;

/* MLM corruption of a batch of tokens (B*T) in place; labels get the
 * original id at chosen positions and -1 (ignored) elsewhere. Only words
 * are chosen, never [CLS] or padding. */
static void mlm_mask(acn_rng *r, int *tok, const int *mask, int *labels, int n, int vocab, float p)
{
    int i;
    for (i = 0; i < n; i++) {
        labels[i] = -1;
        if (!mask[i] || tok[i] < ACN_TOK_SPECIAL || acn_rng_uniform(r) >= p) continue;
        labels[i] = tok[i];
        {
            float u = acn_rng_uniform(r);
            if (u < 0.8f) tok[i] = ACN_TOK_MASK;
            else if (u < 0.9f) tok[i] = ACN_TOK_SPECIAL + (int)(acn_rng_u64(r) % (uint64_t)(vocab - ACN_TOK_SPECIAL));
        }
    }
}

/* Rows of T tokens for sentences idx[0..b-1], T the longest of them plus
 * [CLS], at most o->seq: short sentences make short batches. */
static int bert_batch(bert_run *R, const acn_textset *ts, int b)
{
    int T = 1, k;
    for (k = 0; k < b; k++) {
        int len = 1 + (int)(ts->start[R->idx[k] + 1] - ts->start[R->idx[k]]);
        if (len > T) T = len;
    }
    if (T > R->o.seq) T = R->o.seq;
    acn_text_batch(ts, R->idx, b, T, R->tok, R->mask, R->lab);
    return T;
}

/* Mean MLM cross-entropy over the masked positions of rows [off, off + b)
 * of a batch (B, T): the encoder's output y, the rows chosen by mlm_lab
 * gathered (acn_embedding), and the MLM head on those rows only. *count
 * gets their number; NULL with count 0 when nothing was masked, unless
 * always: then one row with its label ignored stands in, for a loss of 0
 * and no gradient (a rank whose rows have no masked word, while other
 * ranks' have). */
static acn_tensor *bert_mlm_loss(bert_run *R, int off, int b, int T, int always, int *count)
{
    acn_ctx *ctx = R->ctx;
    int n = 0, k, s[2];
    const int *lab = R->mlm_lab + (size_t)off * T;
    acn_tensor *y;
    for (k = 0; k < b * T; k++)
        if (lab[k] >= 0) { R->rows[n] = k; R->row_lab[n++] = lab[k]; }
    *count = n;
    if (!n && !always) return NULL;
    if (!n) { R->rows[0] = 0; R->row_lab[0] = -1; }
    y = acn_bert_forward(ctx, &R->m, R->tok + (size_t)off * T, R->mask + (size_t)off * T, b, T, ACN_BERT_NONE, -1,
                         NULL); /* (b, T, D) */
    if (!n) n = 1;
    s[0] = b * T;
    s[1] = R->o.width;
    y = acn_embedding(ctx, acn_reshape(ctx, y, 2, s), R->rows, 1, &n);                  /* (n, D) */
    return acn_cross_entropy(ctx, acn_bert_mlm(ctx, &R->m, y), R->row_lab, 0.0f, -1);  /* (n, V) -> scalar */
}

/* Dev set: the MLM loss (fixed masks from their own generator), or the
 * accuracy of the classification head after each of 0..L blocks. */
static int bert_eval(bert_run *R, int phase, float *acc, double *loss_out)
{
    acn_ctx *ctx = R->ctx;
    const acn_textset *dv = &R->dev;
    int B = R->o.batch, L = R->o.depth, i, k, c;
    int nb = (dv->n + B - 1) / B, r = acn_dist_rank(ctx), size = acn_dist_size(ctx);
    int mine_lo = (int)((long)nb * r / size), mine_hi = (int)((long)nb * (r + 1) / size); /* this rank's batches */
    double sums[TRAIN_MAXL + 4]; /* correct after k blocks (0..L), the loss, its count, ranks that failed */
    acn_tensor *probes[TRAIN_MAXL + 1];
    acn_rng gen;
    int train_was = acn_set_train(ctx, 0), nograd_was = acn_set_no_grad(ctx, 1);
    acn_rng_seed(&gen, 4242);
    memset(sums, 0, sizeof sums);
    for (i = 0; i < dv->n && !acn_status_of(ctx); i += B) {
        int b = dv->n - i < B ? dv->n - i : B, T, mine = i / B >= mine_lo && i / B < mine_hi;
        /* another rank's batch: skipped, but for the MLM masks, which every rank draws to stay in step */
        if (!mine && phase != PHASE_MLM) continue;
        for (k = 0; k < b; k++) R->idx[k] = i + k;
        T = bert_batch(R, dv, b);
        acn_reset(ctx);
        if (phase == PHASE_MLM) {
            acn_tensor *lo;
            int n;
            mlm_mask(&gen, R->tok, R->mask, R->mlm_lab, b * T, R->vocab.size, R->o.mask_p);
            if (!mine) continue;
            lo = bert_mlm_loss(R, 0, b, T, 0, &n);
            if (!n) continue;
            if (!lo) break;
            sums[L + 1] += (double)acn_item(ctx, lo) * n;
            sums[L + 2] += n;
        } else {
            acn_tensor *lo;
            if (!acn_bert_forward_ex(ctx, &R->m, R->tok, R->mask, b, T, ACN_BERT_CLS, -1, probes, TRAIN_MAXL + 1)) break;
            if (!(lo = acn_cross_entropy(ctx, probes[L], R->lab, 0.0f, -1))) break;
            sums[L + 1] += (double)acn_item(ctx, lo) * b;
            sums[L + 2] += b;
            for (k = 0; k <= L; k++) { /* the predictions go into R->idx, free once the batch is read */
                if (acn_argmax(ctx, probes[k], R->idx)) break;
                for (c = 0; c < b; c++) sums[k] += (R->idx[c] == 1) == (R->lab[c] == 1);
            }
        }
    }
    acn_set_train(ctx, train_was);
    acn_set_no_grad(ctx, nograd_was);
    if (eval_sum_ranks(ctx, sums, L + 4)) return 1;
    for (k = 0; k <= L; k++) acc[k] = 100.0f * (float)sums[k] / (float)dv->n;
    *loss_out = sums[L + 2] > 0.0 ? sums[L + 1] / sums[L + 2] : 0.0;
    return 0;
}

static int bert_save(bert_run *R, const run_files *f, const acn_adamw *opt, const acn_sampler *smp, long step,
                     int phase, const epoch_sums *es)
{
    run_meta m = R->meta;
    int i;
    if (acn_dist_rank(R->ctx) > 0) { /* rank 0 writes for all: they hold the same state */
        R->saved_step = step;
        R->saves++;
        return 0;
    }
    if (run_keep_previous(R->prog, f)) return 1;
    for (i = 0; i < R->train_meta.n; i++) meta_set(&m, R->train_meta.key[i], "%s", R->train_meta.val[i]);
    meta_set(&m, "phase", "%s", phase_name[phase]);
    sums_to_meta(es, R->o.depth, &m);
    if (run_save(R->ctx, R->prog, f, opt, smp, step, meta_kv(&m), m.n)) return 1;
    R->saved_step = step;
    R->saves++;
    return 0;
}

/* One phase. resume: the checkpoint to continue from, or NULL. Returns the
 * exit status (0, 1 error, 3 non-finite loss, 130 signal). */
static int bert_phase(bert_run *R, int phase, const run_files *resume, const run_files *save)
{
    acn_ctx *ctx = R->ctx;
    const bert_opts *o = &R->o;
    int B = o->batch, T, L = o->depth, status = 0, k;
    long spe = (R->train.n + B - 1) / B, total = spe * (long)o->epochs[phase], step = 0;
    acn_adamw opt;
    acn_sampler smp;
    acn_schedule sched = acn_schedule_warmup_cosine(o->lr[phase], (int64_t)o->warmup[phase] * spe, total, 1e-6f);
    progress pg;
    double dev_loss = 0.0, t0;
    epoch_sums es;
    acn_tensor *gw[TRAIN_MAXL];
    float acc[TRAIN_MAXL + 1];
    if (!o->epochs[phase] && !resume) return 0; /* (a checkpoint of this phase still loads: its weights go on) */
    memset(&es, 0, sizeof es);
    sums_find_weights(ctx, "blocks.%d.mlp.fc1.weight", L, gw);
    memset(&opt, 0, sizeof opt);
    memset(&smp, 0, sizeof smp);
    if (acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, o->wd) ||
        acn_sampler_init(ctx, &smp, R->train.n, B, (uint64_t)o->seed + (uint64_t)phase, 0)) {
        train_report(ctx, R->prog, "");
        status = 1;
        goto done;
    }
    if (resume) {
        int64_t s64;
        if (acn_load_checkpoint(ctx, resume->weights, resume->state, &opt, &smp, &s64)) {
            run_resume_failed(ctx, R->prog, resume);
            status = 1;
            goto done;
        }
        step = (long)s64;
        if (!o->save || !strcmp(o->save, o->resume)) R->saved_step = step;
        sums_from_meta(ctx, resume->weights, L, &es);
        printf("resumed %s from %s at step %ld (epoch %ld, sentence %ld of %d)\n", phase_name[phase], resume->weights,
               step, (long)smp.epoch + 1, (long)smp.pos, R->train.n);
    }
    printf("phase %s: %d epochs of %ld steps, lr %g, warmup %d epoch(s)\n", phase_name[phase], o->epochs[phase], spe,
           o->lr[phase], o->warmup[phase]);
    fflush(stdout);
    progress_init(&pg);
    t0 = now_s() - es.seconds;
    if (acn_dist_broadcast_params(ctx)) { /* equal already (one seed, one file); now certainly */
        train_report(ctx, R->prog, "");
        status = 1;
        goto done;
    }
    while (smp.epoch < o->epochs[phase]) {
        int b, off, cnt;
        acn_tensor *out, *loss;
        float lr, batch_loss = 0.0f;
        double share;
        if (train_should_stop(ctx)) { /* Ctrl-C (on any rank): between two steps, the state is whole */
            progress_end(&pg);
            es.seconds = now_s() - t0;
            if (o->save && bert_save(R, save, &opt, &smp, step, phase, &es)) { status = 1; break; }
            if (o->save)
                printf("stopped by %s at %s step %ld; saved %s and %s; continue with --resume %s\n",
                       train_signal_name(), phase_name[phase], step, save->weights, save->state, o->save);
            else
                printf("stopped by %s at %s step %ld; nothing saved (no --save)\n", train_signal_name(),
                       phase_name[phase], step);
            status = 130;
            break;
        }
        b = acn_sampler_next(&smp, R->idx);
        if (b == 0) { /* end of an epoch: the dev set, the log, a checkpoint */
            long e = (long)smp.epoch - 1;
            progress_end(&pg);
            if (bert_eval(R, phase, acc, &dev_loss)) {
                train_report(ctx, R->prog, "evaluation failed: ");
                status = 1;
                break;
            }
            printf("%s epoch %ld/%d: train loss %.4f, dev loss %.4f", phase_name[phase], e + 1, o->epochs[phase],
                   es.batches ? es.loss / es.batches : 0.0, dev_loss);
            if (phase == PHASE_CLS) {
                printf(", dev accuracy %.2f%%\n  dev accuracy after k blocks:", acc[L]);
                for (k = 0; k <= L; k++) printf("  %d:%.1f", k, acc[k]);
            }
            printf(" (%.0f s)\n", now_s() - t0);
            fflush(stdout);
            if (R->log) {
                fprintf(R->log, "%s,%ld,%ld,%.6f,%.6f", phase_name[phase], e + 1, step,
                        es.batches ? es.loss / es.batches : 0.0, dev_loss);
                for (k = 0; k <= L; k++)
                    if (phase == PHASE_CLS) fprintf(R->log, ",%.4f", acc[k]);
                    else fprintf(R->log, ",");
                for (k = 0; k < L; k++) fprintf(R->log, ",%.6g", es.batches ? es.gnorm[k] / es.batches : 0.0);
                log_end_row(R->log, R->log_record, now_s() - t0);
                fflush(R->log);
            }
            memset(&es, 0, sizeof es);
            t0 = now_s();
            if (o->save && bert_save(R, save, &opt, &smp, step, phase, &es)) { status = 1; break; }
            continue;
        }
        /* every rank makes the whole batch (and its masks, with the
         * generator they share) and trains on its rows [off, off + cnt) */
        T = bert_batch(R, &R->train, b);
        acn_reset(ctx);
        off = 0;
        cnt = b;
        acn_dist_rows(ctx, b, &off, &cnt);
        loss = NULL;
        share = 0.0;
        if (phase == PHASE_MLM) {
            int n = 0, all = 0;
            mlm_mask(acn_ctx_rng(ctx), R->tok, R->mask, R->mlm_lab, b * T, R->vocab.size, o->mask_p);
            for (k = 0; k < b * T; k++) all += R->mlm_lab[k] >= 0;
            if (!all) continue; /* nothing masked: no step */
            if (cnt > 0) /* (a short last batch may leave a rank no rows) */
                loss = bert_mlm_loss(R, off, cnt, T, 1, &n);
            share = (double)n / all;
        } else if (cnt > 0) {
            out = acn_bert_forward(ctx, &R->m, R->tok + (size_t)off * T, R->mask + (size_t)off * T, cnt, T,
                                   ACN_BERT_CLS, -1, NULL);
            loss = acn_cross_entropy(ctx, out, R->lab + off, 0.0f, -1);
            share = (double)cnt / b;
        }
        {
            char where[64];
            snprintf(where, sizeof where, "%s step %ld", phase_name[phase], step);
            lr = acn_lr_at(&sched, step);
            status = train_update(ctx, R->prog, loss, share, &opt, lr, o->clip, &es, gw, L, &pg, where,
                                  last_good(o->save ? save->weights : NULL, R->saved_step), &batch_loss);
            if (status) break;
        }
        step++;
        progress_show(&pg, phase_name[phase], (long)smp.epoch, o->epochs[phase], (smp.pos + B - 1) / B, spe, step,
                      total, batch_loss, lr, (double)pg.steps_done * B, "sent");
        if (o->save && o->save_every && step % o->save_every == 0) {
            es.seconds = now_s() - t0;
            if (bert_save(R, save, &opt, &smp, step, phase, &es)) { status = 1; break; }
        }
        R->steps_run++;
        if (o->stop_after && R->steps_run == o->stop_after) raise(SIGINT);
    }
    progress_end(&pg);
done:
    acn_adamw_free(&opt);
    acn_sampler_free(&smp);
    return status;
}

/* FNV-1a (64 bits) of the vocabulary's words in id order, each ended by a
 * newline, as hex: the checkpoint records it ("vocab_fnv"), so that
 * --eval-only can tell a vocabulary of the same size but other words. */
static const char *vocab_fnv(const acn_vocab *v, char *buf, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    int i;
    for (i = 0; i < v->size; i++) {
        const unsigned char *w = (const unsigned char *)v->words[i];
        for (; *w; w++) h = (h ^ *w) * 1099511628211ULL;
        h = (h ^ '\n') * 1099511628211ULL;
    }
    snprintf(buf, n, "%016llx", (unsigned long long)h);
    return buf;
}

/* The flags --eval-only takes from the weights file besides the model's:
 * the vocabulary is rebuilt from train.tsv with the run's threshold. */
static const char *const bert_eval_keys[] = {"min_count", NULL};

/* --eval-only: the weights of --weights (whose metadata built the model)
 * on the dev set, the accuracy of the classification head after every
 * block printed and, with --log, a row appended to a CSV file of
 * evaluations: weights,step,dev_loss,dev_acc,dev_acc_0..dev_acc_L,
 * cpu_model,acn_version (a file with another header is refused). Returns
 * the exit status: 0, or 1 with a message. */
static int bert_eval_only(bert_run *R)
{
    const bert_opts *o = &R->o;
    int L = o->depth, k;
    float acc[TRAIN_MAXL + 1];
    double loss, t0 = now_s();
    char head[8192] = "", step[32], vocab[32], phase[16], fnv[32], mine[32];
    const char *v;
    FILE *log;
    acn_st st;
    if (acn_st_read(R->ctx, o->weights, &st)) { /* its metadata, read once */
        fprintf(stderr, "%s: --weights: %s\n", R->prog, acn_error(R->ctx));
        return 1;
    }
    snprintf(vocab, sizeof vocab, "%s", (v = acn_st_meta(&st, "vocab")) ? v : "");
    snprintf(fnv, sizeof fnv, "%s", (v = acn_st_meta(&st, "vocab_fnv")) ? v : "");
    snprintf(step, sizeof step, "%s", (v = acn_st_meta(&st, "step")) ? v : "");
    snprintf(phase, sizeof phase, "%s", (v = acn_st_meta(&st, "phase")) ? v : "");
    acn_st_free(&st);
    vocab_fnv(&R->vocab, mine, sizeof mine);
    if (atoi(vocab) != R->vocab.size || (fnv[0] && strcmp(fnv, mine))) {
        fprintf(stderr, "%s: --weights %s: its vocabulary (%s words) is not the one train.tsv in %s gives (%d words, "
                "--min-count %d); evaluate with the training data the model was trained on\n", R->prog, o->weights,
                vocab[0] ? vocab : "(not recorded)", o->data_dir, R->vocab.size, o->min_count);
        if (fnv[0]) fprintf(stderr, "%s: (FNV-1a of its words %s, of these %s)\n", R->prog, fnv, mine);
        return 1;
    }
    if (acn_load_params(R->ctx, o->weights)) {
        fprintf(stderr, "%s: --weights: %s\n", R->prog, acn_error(R->ctx));
        return 1;
    }
    if (!strcmp(phase, "mlm"))
        printf("note: %s was saved during MLM pretraining; its classification head is not trained yet\n", o->weights);
    if (bert_eval(R, PHASE_CLS, acc, &loss)) {
        train_report(R->ctx, R->prog, "evaluation failed: ");
        return 1;
    }
    printf("%s (step %s): dev loss %.4f, dev accuracy %.2f%% (%.0f s)\n  dev accuracy after k blocks:", o->weights,
           step[0] ? step : "?", loss, acc[L], now_s() - t0);
    for (k = 0; k <= L; k++) printf("  %d:%.1f", k, acc[k]);
    printf("\n");
    if (!o->log || acn_dist_rank(R->ctx) > 0) return 0;
    buf_add(head, sizeof head, "weights,step,dev_loss,dev_acc");
    for (k = 0; k <= L; k++) buf_add(head, sizeof head, ",dev_acc_%d", k);
    buf_add(head, sizeof head, ",cpu_model,acn_version\n");
    if (!(log = eval_log_open(R->prog, o->log, head, L))) return 1;
    csv_quoted(log, o->weights);
    fprintf(log, ",%s,%.6f,%.4f", step, loss, acc[L]);
    for (k = 0; k <= L; k++) fprintf(log, ",%.4f", acc[k]);
    fprintf(log, ",%s,%s\n", train_cpu_model(), ACN_VERSION);
    if (fclose(log)) {
        fprintf(stderr, "%s: writing the log %s failed: %s\n", R->prog, o->log, strerror(errno));
        return 1;
    }
    return 0;
}

/* Everything main allocated, freed (each part may be unset). */
static void bert_free(bert_run *R)
{
    if (R->log) fclose(R->log);
    free(R->tok);
    free(R->mask);
    free(R->mlm_lab);
    free(R->lab);
    free(R->idx);
    free(R->rows);
    free(R->row_lab);
    acn_text_free(&R->train);
    acn_text_free(&R->dev);
    acn_vocab_free(&R->vocab);
}

int main(int argc, char **argv)
{
    static bert_run R; /* static: two run_meta tables are large for a stack */
    bert_opts *o = &R.o;
    acn_bert_config bc = acn_bert_defaults();
    flag f[40];
    int n = 0, rc, resume_phase = PHASE_MLM, arena_mb = 2048;
    char tr_path[1100], dv_path[1100], changes[2000] = "";
    run_files save, resume;
    static run_meta derived; /* compared on --resume, not a flag: the training sentences */
    memset(&R, 0, sizeof R);
    R.prog = argv[0];
    R.saved_step = -1;
    o->data_dir = "data/sst2";
    o->wiring = "acn";
    o->width = 128;
    o->depth = 4;
    o->heads = 4;
    o->mlp = 512;
    o->seq = 64;
    o->min_count = 1;
    o->batch = 64;
    o->epochs[0] = 1;
    o->epochs[1] = 3;
    o->warmup[0] = 0;
    o->warmup[1] = 0;
    o->lr[0] = 1e-3f;
    o->lr[1] = 1e-4f;
    o->wd = 0.01f;
    o->clip = 1.0f;
    o->dropout = 0.1f;
    o->mask_p = 0.15f;
    /* each flag says what it may do on --resume (train.h, RESUME_*); the epochs of either phase may differ, as
     * --epochs may for the image programs */
    F_("--data-dir", FLAG_STR, &o->data_dir, 0, 0, RESUME_ANY, "the folder with SST-2's train.tsv and dev.tsv");
    F_("--wiring", FLAG_STR, &o->wiring, 0, 0, RESUME_MODEL("wiring"), "acn, residual, plain or acn-detach");
    F_("--width", FLAG_INT, &o->width, 8, 65536, RESUME_MODEL("width"), "hidden size (a multiple of --heads)");
    F_("--depth", FLAG_INT, &o->depth, 1, TRAIN_MAXL, RESUME_MODEL("depth"), "blocks");
    F_("--heads", FLAG_INT, &o->heads, 1, 256, RESUME_MODEL("heads"), "attention heads");
    F_("--mlp", FLAG_INT, &o->mlp, 1, 65536, RESUME_MODEL("mlp"), "hidden width of the MLP");
    F_("--seq", FLAG_INT, &o->seq, 4, 4096, RESUME_MODEL("seq"), "tokens per sentence: [CLS] and the words, cut or padded");
    F_("--min-count", FLAG_INT, &o->min_count, 1, 1e9, RESUME_SAME("min_count"), "words seen fewer times in training become [UNK]");
    F_("--dropout", FLAG_FLOAT, &o->dropout, 0, 0.99, RESUME_SAME("dropout"), "dropout after the embedding and each sublayer");
    F_("--batch", FLAG_INT, &o->batch, 1, 4096, RESUME_SAME("batch"), "batch size (both phases)");
    F_("--mlm-epochs", FLAG_INT, &o->epochs[0], 0, 1e6, RESUME_ANY, "epochs of masked-language-model pretraining");
    F_("--mlm-lr", FLAG_FLOAT, &o->lr[0], 0, 1e30, RESUME_SAME("mlm_lr"), "peak learning rate of pretraining");
    F_("--mlm-warmup", FLAG_INT, &o->warmup[0], 0, 1e6, RESUME_SAME("mlm_warmup_epochs"), "warmup epochs of pretraining");
    F_("--mask", FLAG_FLOAT, &o->mask_p, 0.01, 1, RESUME_SAME("mask"), "share of words chosen for the MLM loss");
    F_("--cls-epochs", FLAG_INT, &o->epochs[1], 0, 1e6, RESUME_ANY, "epochs of fine-tuning on the labels");
    F_("--cls-lr", FLAG_FLOAT, &o->lr[1], 0, 1e30, RESUME_SAME("cls_lr"), "peak learning rate of fine-tuning");
    F_("--cls-warmup", FLAG_INT, &o->warmup[1], 0, 1e6, RESUME_SAME("cls_warmup_epochs"), "warmup epochs of fine-tuning");
    F_("--wd", FLAG_FLOAT, &o->wd, 0, 10, RESUME_SAME("weight_decay"), "AdamW weight decay");
    F_("--clip", FLAG_FLOAT, &o->clip, 0, 1e9, RESUME_SAME("clip"), "clip the gradient's global norm (0: no clipping)");
    F_("--seed", FLAG_INT, &o->seed, 0, 2147483647.0, RESUME_FIXED("seed"), "seed of initialisation, shuffling, masks and dropout");
    F_("--limit", FLAG_INT, &o->limit, 0, 1e9, RESUME_SAME("limit"), "use only the first N training sentences (0: all)");
    F_("--threads", FLAG_INT, &o->threads, 0, TRAIN_MAX_THREADS, RESUME_ANY, "threads, up to 64 (0: ACN_THREADS or every core)");
    F_("--device", FLAG_STR, &train_device, 0, 0, RESUME_ANY, "cpu, or cuda: a GPU (a build with ACN_CUDA: make cuda)");
    F_("--arena-mb", FLAG_INT, &arena_mb, 16, 1 << 20, RESUME_ANY, "the step arena, in MB (pages are used as needed)");
    F_("--save", FLAG_STR, &o->save, 0, 0, RESUME_ANY, "checkpoint prefix: PREFIX.safetensors and PREFIX.state.safetensors");
    F_("--save-every", FLAG_INT, &o->save_every, 0, 1e9, RESUME_ANY, "also save every N steps (0: at each epoch's end only)");
    F_("--resume", FLAG_STR, &o->resume, 0, 0, RESUME_ANY, "continue from checkpoint PREFIX exactly (the same flags)");
    F_("--force-resume", FLAG_SWITCH, &o->force_resume, 0, 0, RESUME_ANY, "with --resume: continue even if training settings differ from the checkpoint's");
    F_("--stop-after", FLAG_INT, &o->stop_after, 0, 2147483647.0, RESUME_ANY, "send this process SIGINT after N steps, as Ctrl-C would (0: never)");
    F_("--log", FLAG_STR, &o->log, 0, 0, RESUME_ANY, "CSV file: one row per epoch of either phase");
    F_("--eval-only", FLAG_SWITCH, &o->eval_only, 0, 0, RESUME_ANY, "evaluate the checkpoint --weights on the dev set (the model from its metadata) and stop");
    F_("--weights", FLAG_STR, &o->weights, 0, 0, RESUME_ANY, "with --eval-only: a weights file, PREFIX.safetensors (a cut one too)");
    rc = flags_parse(argc, argv, f, n,
                     "Pretrains a small BERT (masked words) on the SST-2 training sentences, fine-tunes it on\n"
                     "their sentiment labels, and reports the dev accuracy of its head after every block.");
    if (rc) return rc == 1 ? 0 : 2;
    /* the flags alone, before anything is allocated: exit 2 */
    if (eval_flags_check(argv[0], o->eval_only, o->weights, o->save ? "--save" : o->resume ? "--resume" : NULL))
        return 2;
    if (o->eval_only && (rc = flags_from_weights(argv[0], o->weights, "bert", argc, argv, f, n, bert_eval_keys)))
        return rc;
    if ((bc.wiring = train_wiring(argv[0], o->wiring)) < 0 || train_device_check(argv[0])) return 2;
    if ((o->save && run_prefix(argv[0], "--save", o->save, &save)) ||
        (o->resume && run_prefix(argv[0], "--resume", o->resume, &resume)))
        return 2;
    if (o->force_resume && !o->resume) {
        fprintf(stderr, "%s: --force-resume goes with --resume PREFIX\n", argv[0]);
        return 2;
    }
    if (!o->eval_only && !o->epochs[PHASE_MLM] && !o->epochs[PHASE_CLS]) {
        fprintf(stderr, "%s: nothing to train: --mlm-epochs and --cls-epochs are both 0; give either at least 1\n",
                argv[0]);
        return 2;
    }
    if (o->width % o->heads) {
        fprintf(stderr, "%s: --width %d is not a multiple of --heads %d (each head gets width / heads channels)\n",
                argv[0], o->width, o->heads);
        return 2;
    }
    /* a block has 16 parameter tensors; the table is sized for the depth asked */
    if (!(R.ctx = train_ctx_new(argv[0], o->seed, arena_mb, o->threads, 64 + 20 * o->depth))) return 1;
    rc = 1; /* from here on, every exit goes through done */
    snprintf(tr_path, sizeof tr_path, "%s/train.tsv", o->data_dir);
    snprintf(dv_path, sizeof dv_path, "%s/dev.tsv", o->data_dir);
    if (acn_text_tsv(R.ctx, &R.train, tr_path, &R.vocab, 1, o->min_count) ||
        acn_text_tsv(R.ctx, &R.dev, dv_path, &R.vocab, 0, 1)) {
        fprintf(stderr, "%s: %s\n%s: SST-2 is GLUE's train.tsv and dev.tsv; point --data-dir at their folder\n",
                argv[0], acn_error(R.ctx), argv[0]);
        goto done;
    }
    if (R.vocab.size <= ACN_TOK_SPECIAL) {
        fprintf(stderr, "%s: --min-count %d: no training word is seen that often, so the vocabulary would hold only "
                "the %d special tokens and every word would be [UNK]; lower --min-count\n", argv[0], o->min_count,
                R.vocab.size);
        rc = 2;
        goto done;
    }
    if (o->limit && o->limit < R.train.n) R.train.n = o->limit;
    bc.vocab = R.vocab.size;
    bc.max_pos = o->seq;
    bc.width = o->width;
    bc.depth = o->depth;
    bc.heads = o->heads;
    bc.mlp = o->mlp;
    bc.classes = 2;
    bc.dropout = o->dropout;
    if (acn_bert_build(R.ctx, &R.m, &bc)) {
        train_report(R.ctx, argv[0], "");
        rc = 2;
        goto done;
    }
    meta_set(&R.meta, "model", "bert");
    meta_set(&R.meta, "wiring", "%s", acn_wiring_name(bc.wiring));
    meta_set(&R.meta, "vocab", "%d", bc.vocab);
    meta_set(&R.meta, "seq", "%d", o->seq);
    meta_set(&R.meta, "width", "%d", o->width);
    meta_set(&R.meta, "depth", "%d", o->depth);
    meta_set(&R.meta, "heads", "%d", o->heads);
    meta_set(&R.meta, "mlp", "%d", o->mlp);
    flags_meta(f, n, &R.train_meta);
    meta_set(&R.train_meta, "mlm_epochs", "%d", o->epochs[PHASE_MLM]); /* for the record: they may differ */
    meta_set(&R.train_meta, "cls_epochs", "%d", o->epochs[PHASE_CLS]);
    meta_set(&R.train_meta, "train_sentences", "%d", R.train.n);
    { /* for the record and for --eval-only: which vocabulary the ids index */
        char fnv[32];
        meta_set(&R.train_meta, "vocab_fnv", "%s", vocab_fnv(&R.vocab, fnv, sizeof fnv));
    }
    derived.n = 0;
    meta_set(&derived, "train_sentences", "%d", R.train.n);
    R.tok = (int *)malloc(sizeof(int) * (size_t)o->batch * o->seq);
    R.mask = (int *)malloc(sizeof(int) * (size_t)o->batch * o->seq);
    R.mlm_lab = (int *)malloc(sizeof(int) * (size_t)o->batch * o->seq);
    R.lab = (int *)malloc(sizeof(int) * (size_t)o->batch);
    R.idx = (int *)malloc(sizeof(int) * (size_t)o->batch);
    R.rows = (int *)malloc(sizeof(int) * (size_t)o->batch * o->seq);
    R.row_lab = (int *)malloc(sizeof(int) * (size_t)o->batch * o->seq);
    if (!R.tok || !R.mask || !R.mlm_lab || !R.lab || !R.idx || !R.rows || !R.row_lab) {
        fprintf(stderr, "%s: out of memory for a batch of %d; try a smaller --batch\n", argv[0], o->batch);
        goto done;
    }
    printf("SST-2: %d training and %d dev sentences, vocabulary %d (the training words seen at least %d time%s)\n",
           R.train.n, R.dev.n, R.vocab.size, o->min_count, o->min_count == 1 ? "" : "s");
    printf("BERT, %s wiring: %d blocks of width %d, %d heads, MLP %d, %d tokens; %zu parameters; %d thread%s\n",
           acn_wiring_name(bc.wiring), o->depth, o->width, o->heads, o->mlp, o->seq, acn_param_numel(R.ctx),
           acn_threads(R.ctx), acn_threads(R.ctx) == 1 ? "" : "s");
    fflush(stdout);
    if (o->eval_only) {
        rc = bert_eval_only(&R);
        goto done;
    }
    if (o->resume) {
        char ph[16];
        if ((rc = resume_check(R.ctx, argv[0], &resume, &R.meta, f, n, &derived, o->force_resume, changes,
                               sizeof changes))) {
            goto done;
        }
        rc = 1;
        meta_get(R.ctx, resume.weights, "phase", ph, sizeof ph);
        resume_phase = !strcmp(ph, "cls") ? PHASE_CLS : PHASE_MLM;
    }
    if (o->save && run_can_write(argv[0], &save)) goto done;
    if (o->log && acn_dist_rank(R.ctx) == 0) {
        FILE *old = o->resume ? fopen(o->log, "r") : NULL;
        int k;
        R.log_record = 1;
        if (old) {
            R.log_record = log_has_record(old);
            fclose(old);
        }
        make_parent(o->log);
        if (!(R.log = fopen(o->log, old ? "a" : "w"))) {
            fprintf(stderr, "%s: cannot open the log %s for writing: %s\n", argv[0], o->log, strerror(errno));
            goto done;
        }
        if (!old) {
            fprintf(R.log, "phase,epoch,step,train_loss,dev_loss");
            for (k = 0; k <= o->depth; k++) fprintf(R.log, ",dev_acc_%d", k);
            for (k = 0; k < o->depth; k++) fprintf(R.log, ",grad_norm_%d", k + 1);
            fprintf(R.log, ",seconds,cpu_model,acn_version\n");
        }
        if (changes[0]) fprintf(R.log, "# resumed from %s with --force-resume: %s\n", resume.weights, changes);
        fflush(R.log);
    }
    train_catch_signals();
    rc = 0;
    if (resume_phase == PHASE_MLM) rc = bert_phase(&R, PHASE_MLM, o->resume ? &resume : NULL, &save);
    if (!rc) rc = bert_phase(&R, PHASE_CLS, o->resume && resume_phase == PHASE_CLS ? &resume : NULL, &save);
    if (!rc && o->resume && !R.steps_run && !R.saves)
        printf("the checkpoint has finished its epochs already; nothing to do\n");
    else if (!rc && o->save && R.saves)
        printf("saved %s and %s\n", save.weights, save.state);
done:
    bert_free(&R);
    return R.ctx ? train_finish(R.ctx, rc) : rc;
}
