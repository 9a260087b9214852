// The Llama/Mistral forward pass (mistral-reference.md §2-3) over a batch of tokens from several
// sequences. Every matmul runs once over all the chunk's tokens; attention runs per token against its
// own sequence (cached keys + the chunk's own keys), then the chunk's k/v go to the rolling buffers.
#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/elementwise.h"
#include "kernels/quant.h"
#include "model/attention.h"
#include "model/vec.h"
#include "util/error.h"

namespace wai::model {
namespace {

// Rotates the interleaved pairs (x[2j], x[2j+1]) of each of n_heads heads by the angles in cs
// ([head_dim] = (cos, sin) per pair).
void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cs) {
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t j = 0; j < head_dim; j += 2) {
      const float c = cs[j], s = cs[j + 1];
      const float a = v[j], b = v[j + 1];
      v[j] = a * c - b * s;
      v[j + 1] = a * s + b * c;
    }
  }
}

template <class V>
void grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

Forward::Forward(std::shared_ptr<const Model> model, ThreadPool& pool) : model_(std::move(model)), pool_(pool) {
  if (!model_) fail(ErrorKind::kInternal, "forward: null model");
}

void Forward::validate(const Batch& batch, std::span<KvCache* const> caches) const {
  const Config& c = model_->config();
  const size_t n = batch.tokens.size();
  if (batch.pos.size() != n || batch.seq.size() != n || batch.logits.size() != n)
    invalid("forward: batch vectors have different lengths");
  for (size_t s = 0; s < caches.size(); ++s) {
    const KvCache* kv = caches[s];
    if (!kv) invalid("forward: cache " + std::to_string(s) + " is null");
    if (kv->n_layers() != c.n_layers || kv->kv_dim() != c.n_kv_heads * c.head_dim)
      invalid("forward: cache " + std::to_string(s) + " was made for a different model shape");
    for (size_t t = 0; t < s; ++t)
      if (caches[t] == kv) invalid("forward: caches " + std::to_string(t) + " and " + std::to_string(s) + " are the same object");
  }
  std::vector<int64_t> next(caches.size());
  for (size_t s = 0; s < caches.size(); ++s) next[s] = caches[s]->n_past();
  for (size_t i = 0; i < n; ++i) {
    const int32_t tok = batch.tokens[i], s = batch.seq[i], p = batch.pos[i];
    if (tok < 0 || tok >= c.n_vocab)
      invalid("forward: token id " + std::to_string(tok) + " at batch entry " + std::to_string(i) +
              " is outside the vocabulary [0, " + std::to_string(c.n_vocab) + ")");
    if (s < 0 || static_cast<size_t>(s) >= caches.size())
      invalid("forward: batch entry " + std::to_string(i) + " names sequence " + std::to_string(s) + " but there are " +
              std::to_string(caches.size()) + " caches");
    if (p != next[s])
      invalid("forward: batch entry " + std::to_string(i) + " of sequence " + std::to_string(s) + " has position " +
              std::to_string(p) + ", expected " + std::to_string(next[s]) + " (positions must continue the cache)");
    if (p >= caches[s]->max_positions())
      invalid("forward: position " + std::to_string(p) + " of sequence " + std::to_string(s) +
              " exceeds the cache's limit of " + std::to_string(caches[s]->max_positions()) + " positions");
    ++next[s];
  }
}

void Forward::run(const Batch& batch, std::span<KvCache* const> caches, std::vector<float>& out) {
  validate(batch, caches);
  // Blocks for every position the batch writes (the engine reserves them before; a cache with a pool
  // of its own gets them here).
  std::vector<int64_t> count(caches.size(), 0);
  for (int32_t s : batch.seq) ++count[static_cast<size_t>(s)];
  for (size_t s = 0; s < caches.size(); ++s) {
    if (count[s] == 0) continue;
    const int64_t got = caches[s]->reserve(count[s]);
    if (got < count[s])
      fail(ErrorKind::kResource, "forward: the KV pool has no free block for sequence " + std::to_string(s) + " (" +
                                     std::to_string(got) + " of " + std::to_string(count[s]) + " positions reserved)");
  }
  const size_t n = batch.size();
  const size_t step = max_chunk_ > 0 ? static_cast<size_t>(max_chunk_) : std::max<size_t>(n, 1);
  for (size_t b = 0; b < n; b += step) run_chunk(batch, b, std::min(n, b + step), caches, out);
}

void Forward::run_chunk(const Batch& batch, size_t begin, size_t end, std::span<KvCache* const> caches,
                        std::vector<float>& out) {
  const Model& m = *model_;
  const Config& c = m.config();
  const int64_t n = static_cast<int64_t>(end - begin);
  const int64_t dim = c.dim, hd = c.head_dim, q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, ff = c.ff;
  const size_t N = static_cast<size_t>(n);

  grow(x_, N * dim);
  grow(xn_, N * dim);
  grow(q_, N * q_dim);
  grow(k_, N * kv_dim);
  grow(v_, N * kv_dim);
  grow(k16_, N * kv_dim);
  grow(v16_, N * kv_dim);
  grow(att_, N * q_dim);
  grow(gate_, N * ff);
  grow(up_, N * ff);
  grow(ffo_, N * dim);
  grow(rope_, N * hd);

  // Where each sequence stands at the start of the chunk, and its rows in this chunk (position order).
  n_past_.assign(caches.size(), 0);
  seq_rows_.resize(caches.size());
  for (size_t s = 0; s < caches.size(); ++s) {
    n_past_[s] = caches[s]->n_past();
    seq_rows_[s].clear();
  }
  for (size_t i = begin; i < end; ++i) seq_rows_[batch.seq[i]].push_back(static_cast<int32_t>(i - begin));

  // Embeddings: row `token` of token_embd dequantized to f32.
  const kernels::MatRef& emb = m.token_embd();
  const size_t emb_row = *row_bytes(emb.type, dim);
  for (int64_t i = 0; i < n; ++i)
    kernels::dequantize_row(emb.type, emb.data + static_cast<size_t>(batch.tokens[begin + i]) * emb_row, &x_[i * dim], dim);

  // RoPE angles per token: pos * theta^(-2j/head_dim), j = 0 .. head_dim/2 - 1.
  for (int64_t i = 0; i < n; ++i) {
    const double p = batch.pos[begin + i];
    for (int64_t j = 0; j < hd / 2; ++j) {
      const double a = p * std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(j) / static_cast<double>(hd));
      rope_[i * hd + 2 * j] = static_cast<float>(std::cos(a));
      rope_[i * hd + 2 * j + 1] = static_cast<float>(std::sin(a));
    }
  }

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = m.layers()[static_cast<size_t>(l)];

    // Attention block: x += Wo · Attn(RoPE(Wq·xn), RoPE(Wk·xn), Wv·xn), xn = RMSNorm(x).
    for (int64_t i = 0; i < n; ++i) kernels::rmsnorm(&x_[i * dim], L.attn_norm, &xn_[i * dim], dim, c.norm_eps);
    kernels::matmul(L.wq, xn_.data(), n, q_.data(), pool_);
    kernels::matmul(L.wk, xn_.data(), n, k_.data(), pool_);
    kernels::matmul(L.wv, xn_.data(), n, v_.data(), pool_);
    for (int64_t i = 0; i < n; ++i) {
      rope(&q_[i * q_dim], c.n_heads, hd, &rope_[i * hd]);
      rope(&k_[i * kv_dim], c.n_kv_heads, hd, &rope_[i * hd]);
    }
    // To the cache's format now, before attention (see forward.h).
    vec::to_f16(k_.data(), k16_.data(), n * kv_dim);
    vec::to_f16(v_.data(), v16_.data(), n * kv_dim);
    attention(l, begin, N, batch, caches);
    kernels::matmul(L.wo, att_.data(), n, ffo_.data(), pool_);
    for (int64_t i = 0; i < n * dim; ++i) x_[i] += ffo_[i];

    // Only now, after every token of the chunk has attended, its k/v enter the cache's blocks (the
    // chunk's own keys are read from k16_/v16_, the same halves).
    for (int64_t i = 0; i < n; ++i) {
      KvCache& kv = *caches[batch.seq[begin + i]];
      const int64_t p = batch.pos[begin + i];
      for (int64_t h = 0; h < c.n_kv_heads; ++h) {
        std::memcpy(kv.k(l, p, h), &k16_[i * kv_dim + h * hd], sizeof(uint16_t) * hd);
        std::memcpy(kv.v(l, p, h), &v16_[i * kv_dim + h * hd], sizeof(uint16_t) * hd);
      }
    }

    // FFN block: x += W2 · (silu(W1 · xn) * (W3 · xn)), xn = RMSNorm(x).
    for (int64_t i = 0; i < n; ++i) kernels::rmsnorm(&x_[i * dim], L.ffn_norm, &xn_[i * dim], dim, c.norm_eps);
    kernels::matmul(L.w_gate, xn_.data(), n, gate_.data(), pool_);
    kernels::matmul(L.w_up, xn_.data(), n, up_.data(), pool_);
    // (n * ff exps: at Mistral's ff = 14336 worth spreading over the pool for prefill chunks.)
    pool_.parallel_for(n * ff, [&](int64_t b, int64_t e) { kernels::swiglu(&gate_[b], &up_[b], e - b); }, 4096);
    kernels::matmul(L.w_down, gate_.data(), n, ffo_.data(), pool_);
    for (int64_t i = 0; i < n * dim; ++i) x_[i] += ffo_[i];
  }
  for (size_t s = 0; s < caches.size(); ++s) caches[s]->advance(static_cast<int64_t>(seq_rows_[s].size()));

  // Logits for the requested rows: Wout · RMSNorm(x), appended in batch order.
  int64_t n_out = 0;
  for (int64_t i = 0; i < n; ++i)
    if (batch.logits[begin + i]) kernels::rmsnorm(&x_[i * dim], m.output_norm(), &xn_[n_out++ * dim], dim, c.norm_eps);
  if (n_out == 0) return;
  const size_t old = out.size();
  out.resize(old + static_cast<size_t>(n_out * c.n_vocab));
  kernels::matmul(m.output(), xn_.data(), n_out, out.data() + old, pool_);
}

// att_[i, h*hd .. (h+1)*hd) = sum_j softmax_j(q_ih · k_j / sqrt(hd)) v_j over the keys j of token i's
// sequence with pos - W < j <= pos: positions before the chunk come from the cache (through its block
// table, B consecutive rows per block), the chunk's own positions from k16_/v16_. Query head h reads KV head h / (n_heads / n_kv_heads).
// One work item = (kv head, token): attn::attend() does the token's `group` query heads of that kv
// head together, reading each key/value row once.
void Forward::attention(int64_t layer, size_t begin, size_t n, const Batch& batch, std::span<KvCache* const> caches) {
  const Config& c = model_->config();
  const int64_t hd = c.head_dim, q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const int64_t group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  // Lowest visible position for each token, and the largest key count (scratch size).
  auto lowest = [&](size_t i) -> int64_t { return caches[batch.seq[begin + i]]->lowest_visible(batch.pos[begin + i]); };
  int64_t max_keys = 1;
  for (size_t i = 0; i < n; ++i) max_keys = std::max<int64_t>(max_keys, batch.pos[begin + i] - lowest(i) + 1);
  const int nt = pool_.size();
  const int64_t per_thread = attn::scratch_floats(group, hd, max_keys);
  grow(attn_scratch_, static_cast<size_t>(nt * per_thread));
  grow(krow_, static_cast<size_t>(nt * max_keys));
  grow(vrow_, static_cast<size_t>(nt * max_keys));

  // Prefill: a sequence's chunk keys (at least kMinBlockKeys of them; below that the copy does not pay)
  // are transposed once per kv head, for all the chunk's tokens to score against (attn::KeyBlocks).
  constexpr int64_t kMinBlockKeys = 32;
  kt_off_.assign(caches.size(), -1);
  int64_t total_blocks = 0;
  if (attn::uses_key_blocks(hd))
    for (size_t s = 0; s < caches.size(); ++s) {
      const int64_t m = static_cast<int64_t>(seq_rows_[s].size());
      if (m < kMinBlockKeys) continue;
      kt_off_[s] = total_blocks;
      total_blocks += (m + 15) / 16;
    }
  const int64_t block_floats = hd * 16;
  if (total_blocks > 0) {
    grow(kt_, static_cast<size_t>(c.n_kv_heads * total_blocks * block_floats));
    const int64_t jobs = static_cast<int64_t>(caches.size()) * c.n_kv_heads;
    pool_.run([&](int t, int total) {
      for (int64_t it = t; it < jobs; it += total) {
        const size_t s = static_cast<size_t>(it / c.n_kv_heads);
        const int64_t kvh = it % c.n_kv_heads;
        if (kt_off_[s] < 0) continue;
        attn::transpose_keys(k16_.data() + kvh * hd, seq_rows_[s].data(), static_cast<int64_t>(seq_rows_[s].size()), kv_dim,
                             hd, &kt_[static_cast<size_t>((kvh * total_blocks + kt_off_[s]) * block_floats)]);
      }
    });
  }

  // Items kv-head-major (consecutive items of a thread share keys, which stay in L2), dealt out
  // round-robin: a prefill chunk's later tokens see more keys, so contiguous ranges would leave the
  // thread with the early tokens idle.
  const int64_t items = static_cast<int64_t>(n) * c.n_kv_heads;
  pool_.run([&](int t, int total) {
    float* scratch = &attn_scratch_[static_cast<size_t>(t * per_thread)];
    const uint16_t** kr = &krow_[static_cast<size_t>(t * max_keys)];
    const uint16_t** vr = &vrow_[static_cast<size_t>(t * max_keys)];
    for (int64_t it = t; it < items; it += total) {
      const int64_t kvh = it / static_cast<int64_t>(n);
      const size_t i = static_cast<size_t>(it % static_cast<int64_t>(n));
      const int32_t s = batch.seq[begin + i];
      const KvCache& kv = *caches[s];
      const int64_t p = batch.pos[begin + i], lo = lowest(i), np = n_past_[s];
      const std::vector<int32_t>& rows = seq_rows_[s];
      // Keys lo .. p: first the cached ones (lo .. np-1, block by block: one table lookup per block
      // of B rows), then the chunk's own (np .. p, rows of k16_/v16_).
      const int64_t n_cached = std::max<int64_t>(0, np - lo), nk = p - lo + 1;
      const int64_t B = kv.block_size();
      for (int64_t j = 0; j < n_cached;) {
        const int64_t pos = lo + j, in_block = pos % B, run = std::min(B - in_block, n_cached - j);
        const uint16_t* kb0 = kv.k(layer, pos, kvh);
        const uint16_t* vb0 = kv.v(layer, pos, kvh);
        for (int64_t r = 0; r < run; ++r, ++j) {
          kr[j] = kb0 + r * hd;
          vr[j] = vb0 + r * hd;
        }
      }
      for (int64_t j = n_cached; j < nk; ++j) {
        const int64_t row = rows[static_cast<size_t>(lo + j - np)];
        kr[j] = &k16_[static_cast<size_t>(row * kv_dim + kvh * hd)];
        vr[j] = &v16_[static_cast<size_t>(row * kv_dim + kvh * hd)];
      }
      attn::KeyBlocks kb;  // the chunk's keys np .. p (all but the cached ones), if transposed
      if (kt_off_[s] >= 0) {
        kb.blocks = &kt_[static_cast<size_t>((kvh * total_blocks + kt_off_[s]) * block_floats)];
        kb.first = lo + n_cached - np;
        kb.count = nk - n_cached;
      }
      const int64_t h0 = kvh * group;  // the group's query heads are consecutive
      attn::attend(&q_[i * q_dim + h0 * hd], group, hd, kr, vr, nk, scale, scratch, &att_[i * q_dim + h0 * hd], kb);
    }
  });
}

}  // namespace wai::model
