/* The CPU training loop of cnnlab.text.word2vec (backend "native").
 *
 * One call trains one chunk of sentences with plain SGD, pair by pair, as the
 * word2vec C tool does: sub-sampling, a dynamic window, skip-gram or CBOW, and
 * negative sampling and/or hierarchical softmax. The vector tables belong to the
 * caller (PyTorch tensors) and are updated in place. Several threads may train
 * different chunks at once without locks, as the C tool's threads do; with one
 * thread a run is deterministic for a given seed.
 *
 * Built by setup.py when cnnlab is installed, and loaded by cnnlab/text/native.py
 * with ctypes, which releases the GIL for the duration of a call.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Beyond |x| = SIGMOID_BOUND, sigmoid is 0 or 1 to within 3.4e-4. */
#define SIGMOID_BOUND 8.0f
#define TABLE_SIZE 4096

static float sigmoid_table[TABLE_SIZE + 1];
static float log_sigmoid_table[TABLE_SIZE + 1];

/* Mirrors the ctypes Structure in native.py, field for field. */
typedef struct {
    float *syn0;            /* (vocab, dim) input vectors */
    float *syn1neg;         /* (vocab, dim) output vectors of negative sampling, or NULL */
    float *syn1;            /* (vocab - 1, dim) inner-node vectors of the Huffman tree, or NULL */
    const float *keep_prob; /* (vocab) probability of keeping a word when sub-sampling */
    const float *noise_prob;/* (vocab) alias-method table of the noise distribution: keep probability */
    const int32_t *noise_alias; /* (vocab) and the word drawn otherwise */
    const int32_t *points;  /* (vocab, depth) inner nodes on each word's path */
    const uint8_t *codes;   /* (vocab, depth) branch taken at each node */
    const int32_t *path_len;/* (vocab) nodes on each word's path */
    int64_t vocab_size;
    int64_t dim;
    int64_t depth;
    int32_t sg;
    int32_t cbow_mean;
    int32_t window;
    int32_t negative;
    int32_t shrink_windows; /* draw each centre's window from 1..window (else the full window) */
} Model;

void w2v_init_tables(void) {
    for (int i = 0; i <= TABLE_SIZE; i++) {
        float x = (2.0f * i / TABLE_SIZE - 1.0f) * SIGMOID_BOUND;
        sigmoid_table[i] = 1.0f / (1.0f + expf(-x));
        log_sigmoid_table[i] = logf(sigmoid_table[i]);
    }
}

static inline int table_index(float x) {
    return (int)((x / SIGMOID_BOUND + 1.0f) * (TABLE_SIZE / 2) + 0.5f);
}

static inline float sigmoid(float x) {
    if (x <= -SIGMOID_BOUND) return 0.0f;
    if (x >= SIGMOID_BOUND) return 1.0f;
    return sigmoid_table[table_index(x)];
}

static inline float log_sigmoid(float x) {
    if (x <= -SIGMOID_BOUND) return x; /* log(1 / (1 + e^-x)) -> x */
    if (x >= SIGMOID_BOUND) return 0.0f;
    return log_sigmoid_table[table_index(x)];
}

/* SplitMix64: a small, fast generator with a 64-bit state per chunk. */
static inline uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline float uniform(uint64_t *state) { return (float)(next_random(state) >> 40) * (1.0f / 16777216.0f); }

/* Walker's alias method: one draw picks a slot (high 32 bits) and a coin (low 32 bits). */
static inline int64_t noise_word(const Model *m, uint64_t *state) {
    uint64_t r = next_random(state);
    int64_t slot = (int64_t)(((r >> 32) * (uint64_t)m->vocab_size) >> 32);
    float coin = (float)(r & 0xFFFFFFFFULL) * (1.0f / 4294967296.0f);
    return coin < m->noise_prob[slot] ? slot : m->noise_alias[slot];
}

/* Brings a row towards the cache ahead of its use: one request per 64-byte line. */
static inline void prefetch_row(const float *row, int64_t dim) {
    for (int64_t i = 0; i < dim; i += 16) __builtin_prefetch(row + i, 1);
}

/* Noise words are drawn LOOKAHEAD draws before they are used, from a random stream of
 * their own, and their rows fetched meanwhile: a noise word's row is often out of cache
 * when it is drawn, and a pair would otherwise wait for it. */
#define LOOKAHEAD 16

typedef struct {
    uint64_t state;
    int64_t drawn[LOOKAHEAD]; /* a ring: the next word to use is drawn[next] */
    int next;
} Noise;

static inline int64_t draw_ahead(const Model *m, Noise *noise) {
    int64_t word = noise_word(m, &noise->state);
    prefetch_row(m->syn1neg + word * m->dim, m->dim);
    return word;
}

static void noise_start(const Model *m, Noise *noise, uint64_t seed) {
    noise->state = seed;
    noise->next = 0;
    for (int k = 0; k < LOOKAHEAD; k++) noise->drawn[k] = draw_ahead(m, noise);
}

static inline int64_t next_noise(const Model *m, Noise *noise) {
    int64_t word = noise->drawn[noise->next];
    noise->drawn[noise->next] = draw_ahead(m, noise);
    noise->next = (noise->next + 1) % LOOKAHEAD;
    return word;
}

/* Rows are walked in blocks: of 8 floats (one AVX register, or two SSE ones, through
 * GCC's vector extension), then one of 4, then one float at a time. Every loop over a
 * row uses the same blocks, so a load always finds a store as wide to forward from: a
 * load wider than the stores before it (as -march=native's auto-vectorised 16-float
 * loops were over 8-float stores) waits for them to reach the cache. The types are
 * unaligned (rows of 100 floats start anywhere) and alias float, as their elements do. */
typedef float vec8 __attribute__((vector_size(32), aligned(4)));
typedef float vec4 __attribute__((vector_size(16), aligned(4)));

static inline float dot(const float *a, const float *b, int64_t n) {
    vec8 s8 = {0};
    vec4 s4 = {0};
    float s = 0.0f;
    int64_t i = 0;
    for (; n - i >= 8; i += 8) s8 += *(const vec8 *)(a + i) * *(const vec8 *)(b + i);
    if (n - i >= 4) {
        s4 = *(const vec4 *)(a + i) * *(const vec4 *)(b + i);
        i += 4;
    }
    for (; i < n; i++) s += a[i] * b[i];
    s4 += (vec4){s8[0], s8[1], s8[2], s8[3]} + (vec4){s8[4], s8[5], s8[6], s8[7]};
    return s + (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static inline void axpy(float *y, float a, const float *x, int64_t n) {
    int64_t i = 0;
    for (; n - i >= 8; i += 8) *(vec8 *)(y + i) += a * *(const vec8 *)(x + i);
    if (n - i >= 4) {
        *(vec4 *)(y + i) += a * *(const vec4 *)(x + i);
        i += 4;
    }
    for (; i < n; i++) y[i] += a * x[i];
}

/* The output rows that one input vector h is scored against at once. */
#define MAX_ROWS 16

typedef struct {
    float *rows[MAX_ROWS];
    float labels[MAX_ROWS];
    int n;
    int fresh; /* grad_h holds nothing yet: the first batch writes it instead of adding to it */
} Batch;

/* The logistic terms of a batch: h predicts labels[k] at output vector rows[k]. h does
 * not change while its output steps run (its step gathers in grad_h), so the scores
 * of distinct rows do not depend on each other's updates: all n scores are taken
 * first, then one pass over the dimensions updates every row and gathers h's step,
 * reading h and writing grad_h once instead of once per row. This is the pair-by-pair
 * SGD of the C tool exactly, because a batch never holds the same row twice. Returns
 * the batch's loss and empties it. */
static float flush(Batch *b, const float *h, float *grad_h, float alpha, int64_t dim) {
    float g[MAX_ROWS], loss = 0.0f;
    for (int k = 0; k < b->n; k++) {
        float score = dot(h, b->rows[k], dim);
        g[k] = (b->labels[k] - sigmoid(score)) * alpha;
        loss -= log_sigmoid(b->labels[k] > 0.5f ? score : -score);
    }
    /* One pass over the dimensions in the blocks of dot(): the same body at each width. */
    int n = b->n, fresh = b->fresh;
    float *const *rows = b->rows;
    int64_t i = 0;
    for (; dim - i >= 8; i += 8) {
        vec8 x = *(const vec8 *)(h + i), step = fresh ? (vec8){0} : *(vec8 *)(grad_h + i);
        for (int k = 0; k < n; k++) {
            vec8 out = *(vec8 *)(rows[k] + i);
            step += g[k] * out;
            *(vec8 *)(rows[k] + i) = out + g[k] * x;
        }
        *(vec8 *)(grad_h + i) = step;
    }
    if (dim - i >= 4) {
        vec4 x = *(const vec4 *)(h + i), step = fresh ? (vec4){0} : *(vec4 *)(grad_h + i);
        for (int k = 0; k < n; k++) {
            vec4 out = *(vec4 *)(rows[k] + i);
            step += g[k] * out;
            *(vec4 *)(rows[k] + i) = out + g[k] * x;
        }
        *(vec4 *)(grad_h + i) = step;
        i += 4;
    }
    for (; i < dim; i++) {
        float x = h[i], step = fresh ? 0.0f : grad_h[i];
        for (int k = 0; k < n; k++) {
            float out = rows[k][i];
            step += g[k] * out;
            rows[k][i] = out + g[k] * x;
        }
        grad_h[i] = step;
    }
    b->n = 0;
    b->fresh = 0;
    return loss;
}

/* Adds a term to the batch, first training the batch if it is full or holds the row
 * already (a noise word drawn twice: its second term must see its first update). */
static float add_row(Batch *b, float *row, float label, const float *h, float *grad_h, float alpha, int64_t dim) {
    float loss = 0.0f;
    int repeated = 0;
    for (int k = 0; k < b->n && !repeated; k++) repeated = b->rows[k] == row;
    if (repeated || b->n == MAX_ROWS) loss = flush(b, h, grad_h, alpha, dim);
    b->rows[b->n] = row;
    b->labels[b->n++] = label;
    return loss;
}

/* h predicts word `target`: its Huffman path and/or itself against `negative` noise
 * words. Writes h's step into `grad_h` and returns the loss. */
static float output_step(const Model *m, const float *h, int64_t target, float *grad_h, float alpha,
                         Noise *noise) {
    float loss = 0.0f;
    int64_t dim = m->dim;
    Batch b;
    b.n = 0; /* rows and labels are written before they are read */
    b.fresh = 1;
    if (m->syn1 != NULL) {
        const int32_t *points = m->points + target * m->depth;
        const uint8_t *codes = m->codes + target * m->depth;
        for (int32_t d = 0; d < m->path_len[target]; d++) /* label 1 - code, the C tool's convention */
            loss += add_row(&b, m->syn1 + (int64_t)points[d] * dim, 1.0f - codes[d], h, grad_h, alpha, dim);
    }
    if (m->syn1neg != NULL) {
        loss += add_row(&b, m->syn1neg + target * dim, 1.0f, h, grad_h, alpha, dim);
        for (int32_t d = 0; d < m->negative; d++) {
            int64_t word = next_noise(m, noise);
            if (word != target) /* a draw of the target itself is skipped, as in the C tool */
                loss += add_row(&b, m->syn1neg + word * dim, 0.0f, h, grad_h, alpha, dim);
        }
    }
    return loss + flush(&b, h, grad_h, alpha, dim);
}

/* The C tool's dynamic window: a centre word sees 1..window words each side, uniformly. */
static inline int64_t window_reach(const Model *m, uint64_t *state) {
    uint64_t r = next_random(state);
    return m->shrink_windows ? 1 + (int64_t)(r % (uint64_t)m->window) : m->window;
}

static float skipgram_sentence(const Model *m, const int32_t *words, int64_t n, float alpha, float *grad_h,
                               uint64_t *state, Noise *noise, int64_t *pairs) {
    float loss = 0.0f;
    int64_t dim = m->dim;
    for (int64_t i = 0; i < n; i++) {
        int64_t reach = window_reach(m, state);
        int64_t first = i > reach ? i - reach : 0, last = i + reach < n - 1 ? i + reach : n - 1;
        for (int64_t j = first; j <= last; j++) {
            if (j == i) continue;
            /* The context word's input vector predicts the centre word (as in the C tool). */
            float *h = m->syn0 + (int64_t)words[j] * dim;
            loss += output_step(m, h, words[i], grad_h, alpha, noise);
            axpy(h, 1.0f, grad_h, dim);
            (*pairs)++;
        }
    }
    return loss;
}

static float cbow_sentence(const Model *m, const int32_t *words, int64_t n, float alpha, float *grad_h,
                           float *h, uint64_t *state, Noise *noise, int64_t *pairs) {
    float loss = 0.0f;
    int64_t dim = m->dim;
    for (int64_t i = 0; i < n; i++) {
        int64_t reach = window_reach(m, state);
        int64_t first = i > reach ? i - reach : 0, last = i + reach < n - 1 ? i + reach : n - 1;
        int64_t count = last - first; /* the window less the centre */
        if (count == 0) continue;
        memset(h, 0, dim * sizeof(float));
        for (int64_t j = first; j <= last; j++)
            if (j != i) axpy(h, 1.0f, m->syn0 + (int64_t)words[j] * dim, dim);
        if (m->cbow_mean)
            for (int64_t k = 0; k < dim; k++) h[k] /= (float)count;
        loss += output_step(m, h, words[i], grad_h, alpha, noise);
        /* Averaged context: every word takes the whole step; summed: a share of it. */
        float share = m->cbow_mean ? 1.0f : 1.0f / (float)count;
        for (int64_t j = first; j <= last; j++)
            if (j != i) axpy(m->syn0 + (int64_t)words[j] * dim, share, grad_h, dim);
        (*pairs)++;
    }
    return loss;
}

/* Trains the sentences words[offsets[s] : offsets[s + 1]], s < n_sentences, at learning
 * rate alpha. Returns the summed loss; *pairs gets the (input, target) pairs trained,
 * or -1 if memory ran out, and *kept_words the words left by the sub-sampling (gensim's
 * "effective words"). */
double w2v_train_chunk(const Model *m, const int32_t *words, const int64_t *offsets, int64_t n_sentences,
                       float alpha, uint64_t seed, int64_t *pairs, int64_t *kept_words) {
    int64_t longest = 0;
    for (int64_t s = 0; s < n_sentences; s++)
        if (offsets[s + 1] - offsets[s] > longest) longest = offsets[s + 1] - offsets[s];
    int32_t *kept = malloc((longest + 1) * sizeof(int32_t));
    float *buffers = malloc(2 * m->dim * sizeof(float));
    *pairs = 0;
    *kept_words = 0;
    if (kept == NULL || buffers == NULL) {
        free(kept);
        free(buffers);
        *pairs = -1;
        return 0.0;
    }
    uint64_t state = seed;
    Noise noise;
    if (m->syn1neg != NULL) noise_start(m, &noise, seed ^ 0x5851F42D4C957F2DULL); /* a stream apart from `state`'s */
    double loss = 0.0;
    for (int64_t s = 0; s < n_sentences; s++) {
        int64_t n = 0;
        for (int64_t i = offsets[s]; i < offsets[s + 1]; i++)
            if (uniform(&state) < m->keep_prob[words[i]]) kept[n++] = words[i];
        *kept_words += n;
        if (m->sg)
            loss += skipgram_sentence(m, kept, n, alpha, buffers, &state, &noise, pairs);
        else
            loss += cbow_sentence(m, kept, n, alpha, buffers, buffers + m->dim, &state, &noise, pairs);
    }
    free(kept);
    free(buffers);
    return loss;
}
