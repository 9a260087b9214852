// The forward pass against an independent naive implementation written here (full K/V history, an
// explicit mask i - W < j <= i, double accumulation), and its self-consistency: token-by-token decode
// equals chunked prefill for any chunk size (mistral-inference's check), a window at least the
// sequence length equals full attention, three sequences in one batch equal one by one. The KV cache
// holds IEEE halves, so the reference rounds K (after RoPE) and V to half as well; the AVX-512
// attention kernel is also checked against the portable one directly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "kernels/cpu.h"
#include "kernels/quant.h"
#include "model/attention.h"
#include "model/forward.h"
#include "model/kv/kv_cache.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "util/error.h"
#include "unit/forward_logits.h"

namespace wai::model {
namespace {

// A small model built in memory. The bytes must outlive the model (File::parse borrows them).
struct TestModel {
  std::vector<uint8_t> bytes;
  std::shared_ptr<const Model> model;
};

SynthSpec small_spec(DType type = DType::F32, int64_t heads = 4, int64_t kv_heads = 2) {
  SynthSpec s;
  s.dim = 64;
  s.n_layers = 2;
  s.n_heads = heads;
  s.n_kv_heads = kv_heads;
  s.ff = 96;
  s.n_vocab = 101;
  s.type = type;
  s.seed = 7;
  return s;
}

std::shared_ptr<TestModel> make(const SynthSpec& spec, int64_t window, ThreadPool& pool) {
  auto t = std::make_shared<TestModel>();
  t->bytes = synthetic_bytes(spec, nullptr, pool);
  LoadOptions lo;
  lo.sliding_window = window;
  t->model = Model::from_file(gguf::File::parse(t->bytes), lo);
  return t;
}

std::vector<int32_t> random_ids(int n, int vocab, unsigned seed) {
  std::mt19937 g(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(g() % vocab);
  return ids;
}

// ---- The naive reference: one sequence, all positions, weights dequantized to f32, f64 sums. ----

std::vector<float> deq(const kernels::MatRef& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  const size_t rb = *row_bytes(w.type, w.cols);
  for (int64_t r = 0; r < w.rows; ++r) kernels::dequantize_row(w.type, w.data + r * rb, &out[r * w.cols], w.cols);
  return out;
}

std::vector<double> matvec(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& x) {
  std::vector<double> y(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r] += static_cast<double>(w[r * cols + c]) * x[c];
  return y;
}

std::vector<double> rmsnorm(const std::vector<double>& x, const float* w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w[i];
  return y;
}

// Logits [n, vocab] for every position of `ids`; window 0 = full causal attention.
std::vector<float> naive_logits(const Model& m, const std::vector<int32_t>& ids, int64_t window) {
  const Config& c = m.config();
  const int64_t n = ids.size(), dim = c.dim, hd = c.head_dim, H = c.n_heads, KV = c.n_kv_heads;
  auto emb = deq(m.token_embd());
  std::vector<std::vector<double>> x(n, std::vector<double>(dim));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < dim; ++d) x[i][d] = emb[ids[i] * dim + d];
  auto rope = [&](std::vector<double>& v, int64_t heads, int64_t pos) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < hd / 2; ++j) {
        const double ang = pos * std::pow(static_cast<double>(c.rope_theta), -2.0 * j / hd);
        double& a = v[h * hd + 2 * j];
        double& b = v[h * hd + 2 * j + 1];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(ang) - b0 * std::sin(ang);
        b = a0 * std::sin(ang) + b0 * std::cos(ang);
      }
  };
  for (const LayerWeights& L : m.layers()) {
    auto wq = deq(L.wq), wk = deq(L.wk), wv = deq(L.wv), wo = deq(L.wo);
    auto wg = deq(L.w_gate), wu = deq(L.w_up), wd = deq(L.w_down);
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int64_t i = 0; i < n; ++i) {
      auto xn = rmsnorm(x[i], L.attn_norm, c.norm_eps);
      q[i] = matvec(wq, H * hd, dim, xn);
      k[i] = matvec(wk, KV * hd, dim, xn);
      v[i] = matvec(wv, KV * hd, dim, xn);
      rope(q[i], H, i);
      rope(k[i], KV, i);
      // The cache's format: wai rounds its f32 k/v to half once, right after RoPE.
      for (double& e : k[i]) e = kernels::f16_to_f32(kernels::f32_to_f16(static_cast<float>(e)));
      for (double& e : v[i]) e = kernels::f16_to_f32(kernels::f32_to_f16(static_cast<float>(e)));
    }
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> att(H * hd, 0.0);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / KV);
        std::vector<double> sc(n, -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          const bool visible = j <= i && (window == 0 || i - window < j);  // the exact SWA mask
          if (!visible) continue;
          double s = 0;
          for (int64_t d = 0; d < hd; ++d) s += q[i][h * hd + d] * k[j][g * hd + d];
          sc[j] = s / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += sc[j] == -INFINITY ? 0.0 : std::exp(sc[j] - mx);
        for (int64_t j = 0; j < n; ++j) {
          if (sc[j] == -INFINITY) continue;
          const double p = std::exp(sc[j] - mx) / sum;
          for (int64_t d = 0; d < hd; ++d) att[h * hd + d] += p * v[j][g * hd + d];
        }
      }
      auto o = matvec(wo, dim, H * hd, att);
      for (int64_t d = 0; d < dim; ++d) x[i][d] += o[d];
      auto xn = rmsnorm(x[i], L.ffn_norm, c.norm_eps);
      auto gt = matvec(wg, c.ff, dim, xn), up = matvec(wu, c.ff, dim, xn);
      for (int64_t f = 0; f < c.ff; ++f) gt[f] = gt[f] / (1.0 + std::exp(-gt[f])) * up[f];
      auto down = matvec(wd, dim, c.ff, gt);
      for (int64_t d = 0; d < dim; ++d) x[i][d] += down[d];
    }
  }
  auto out = deq(m.output());
  std::vector<float> logits;
  for (int64_t i = 0; i < n; ++i) {
    auto l = matvec(out, c.n_vocab, dim, rmsnorm(x[i], m.output_norm(), c.norm_eps));
    logits.insert(logits.end(), l.begin(), l.end());
  }
  return logits;
}

// ---- wai's forward pass over one sequence, in chunks of `chunk` tokens (separate run() calls). ----

std::vector<float> wai_logits(const std::shared_ptr<const Model>& m, const std::vector<int32_t>& ids, int64_t chunk,
                              ThreadPool& pool) {
  int64_t n_past = -1;
  auto out = forward_logits(m, ids, chunk, pool, &n_past);
  EXPECT_EQ(n_past, static_cast<int64_t>(ids.size()));
  return out;
}

// Quantized and half-precision weights round the activations (q8_0/q8_K/f16/bf16) before the dot
// products, a discontinuous step: the SIMD kernels sum in a different order for 1 row than for a batch
// (VNNI vs AMX tiles), and a 1e-7 difference upstream can flip one rounding and move a logit by ~0.01.
// The portable kernels sum each row the same way whatever the batch, so exact self-consistency of the
// model code is checked with them; the SIMD kernels get a tolerance that still catches real bugs.
// wai's f32 k/v and the reference's f64 ones differ by about one f32 ulp; about one element in 8000
// sits that close to a half-way point between two halves and rounds to the other neighbour (a step of
// ~5e-4 relative), which moves some logits by ~1.6e-4 here (measured; bit-identical for every chunk
// size, so it is not a chunking effect). The window's own effect on these logits is ~6.
constexpr double kNaiveTol = 5e-4;

struct PortableKernels {
  PortableKernels() { kernels::force_portable(true); }
  ~PortableKernels() { kernels::force_portable(false); }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(double(a[i]) - b[i]));
  return d;
}

TEST(ModelForward, MatchesNaiveFullAttention) {
  ThreadPool pool(2);
  auto t = make(small_spec(), 0, pool);
  auto ids = random_ids(40, 101, 1);
  auto ref = naive_logits(*t->model, ids, 0);
  EXPECT_LT(max_abs_diff(wai_logits(t->model, ids, 40, pool), ref), kNaiveTol);
  EXPECT_LT(max_abs_diff(wai_logits(t->model, ids, 1, pool), ref), kNaiveTol);
}

TEST(ModelForward, RollingBufferMatchesNaiveSlidingWindow) {
  ThreadPool pool(2);
  const int64_t W = 16;
  for (auto [h, kv] : {std::pair<int64_t, int64_t>{4, 4}, {4, 2}, {4, 1}}) {  // MHA, GQA, MQA
    auto t = make(small_spec(DType::F32, h, kv), W, pool);
    ASSERT_EQ(t->model->config().sliding_window, W);
    auto ids = random_ids(70, 101, 2);  // more than four windows
    auto ref = naive_logits(*t->model, ids, W);
    for (int64_t chunk : {1, 3, 7, 16, 64, 70}) {
      SCOPED_TRACE("heads " + std::to_string(h) + "/" + std::to_string(kv) + " chunk " + std::to_string(chunk));
      EXPECT_LT(max_abs_diff(wai_logits(t->model, ids, chunk, pool), ref), kNaiveTol);
    }
    // The window matters: full attention gives different logits past the first window.
    auto full = naive_logits(*t->model, ids, 0);
    EXPECT_GT(max_abs_diff(full, ref), 1e-3);
  }
}

TEST(ModelForward, DecodeEqualsChunkedPrefillQuantized) {
  ThreadPool pool(2);
  for (DType type : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::F16, DType::BF16}) {
    SCOPED_TRACE(std::string(dtype_name(type)));
    SynthSpec spec = small_spec(type);
    if (type == DType::Q4_K || type == DType::Q6_K) spec.dim = 256, spec.ff = 256;  // k-quant blocks of 256
    auto t = make(spec, 16, pool);
    auto ids = random_ids(48, 101, 3);
    const bool kquant = type == DType::Q4_K || type == DType::Q6_K;
    if (!kquant) {  // (the portable k-quant kernels are slow; their rows sum in a fixed order too)
      PortableKernels portable;
      auto decode = wai_logits(t->model, ids, 1, pool);
      for (int64_t chunk : {3, 7, 16, 48}) EXPECT_LT(max_abs_diff(wai_logits(t->model, ids, chunk, pool), decode), 1e-4);
    }
    auto decode = wai_logits(t->model, ids, 1, pool);
    for (int64_t chunk : {3, 7, 16, 48}) EXPECT_LT(max_abs_diff(wai_logits(t->model, ids, chunk, pool), decode), 0.25);
  }
}

TEST(ModelForward, InternalChunkingEqualsOneRun) {
  ThreadPool pool(2);
  auto t = make(small_spec(), 16, pool);
  auto ids = random_ids(50, 101, 4);
  auto ref = wai_logits(t->model, ids, 50, pool);
  for (int64_t max_chunk : {1, 5, 16, 0}) {
    Forward f(t->model, pool);
    f.set_max_chunk(max_chunk);
    KvCache cache(t->model->config(), 50);
    KvCache* caches[] = {&cache};
    Batch b;
    for (int i = 0; i < 50; ++i) b.add(ids[i], i, 0, true);
    std::vector<float> out;
    f.run(b, caches, out);
    EXPECT_LT(max_abs_diff(out, ref), 1e-4) << "max_chunk " << max_chunk;
  }
}

TEST(ModelForward, WindowAtLeastSequenceEqualsFullAttention) {
  ThreadPool pool(2);
  auto full = make(small_spec(), 0, pool);
  auto wide = make(small_spec(), 48, pool);
  auto ids = random_ids(48, 101, 5);
  auto a = wai_logits(full->model, ids, 5, pool);
  auto b = wai_logits(wide->model, ids, 5, pool);
  EXPECT_LT(max_abs_diff(a, b), 1e-6);
}

void three_sequences(DType type, double tol) {
  ThreadPool pool(2);
  auto t = make(small_spec(type), 16, pool);
  const std::vector<std::vector<int32_t>> seqs = {random_ids(37, 101, 10), random_ids(5, 101, 11), random_ids(52, 101, 12)};
  std::vector<std::vector<float>> alone;
  for (const auto& s : seqs) alone.push_back(wai_logits(t->model, s, 1, pool));

  // Together: prefill chunks of different lengths interleaved in one batch, then decode steps with one
  // token of each unfinished sequence per batch (entries in a rotating order).
  Forward f(t->model, pool);
  std::vector<std::unique_ptr<KvCache>> kv;
  for (const auto& s : seqs) kv.push_back(std::make_unique<KvCache>(t->model->config(), s.size()));
  std::vector<KvCache*> caches = {kv[0].get(), kv[1].get(), kv[2].get()};
  std::vector<std::vector<float>> together(3);
  const int64_t V = t->model->config().n_vocab;
  std::vector<size_t> done(3, 0);
  const size_t prefill[3] = {20, 3, 33};
  for (int step = 0; done[0] < seqs[0].size() || done[1] < seqs[1].size() || done[2] < seqs[2].size(); ++step) {
    Batch b;
    std::vector<int> order;
    for (int k = 0; k < 3; ++k) {
      const int s = (k + step) % 3;
      const size_t take = step == 0 ? prefill[s] : 1;
      for (size_t i = 0; i < take && done[s] < seqs[s].size(); ++i, ++done[s]) {
        b.add(seqs[s][done[s]], static_cast<int32_t>(done[s]), s, true);
        order.push_back(s);
      }
    }
    std::vector<float> out;
    f.run(b, caches, out);
    ASSERT_EQ(out.size(), order.size() * V);
    for (size_t e = 0; e < order.size(); ++e)
      together[order[e]].insert(together[order[e]].end(), out.begin() + e * V, out.begin() + (e + 1) * V);
  }
  for (int s = 0; s < 3; ++s) EXPECT_LT(max_abs_diff(together[s], alone[s]), tol) << "sequence " << s;
}

TEST(ModelForward, ThreeSequencesInOneBatchEqualOneByOne) {
  three_sequences(DType::F32, 1e-4);
  {
    PortableKernels portable;
    three_sequences(DType::Q8_0, 1e-4);
  }
  three_sequences(DType::Q8_0, 0.25);
}

TEST(ModelForward, LogitsOnlyForRequestedEntries) {
  ThreadPool pool(1);
  auto t = make(small_spec(), 0, pool);
  auto ids = random_ids(10, 101, 6);
  auto all = wai_logits(t->model, ids, 10, pool);
  Forward f(t->model, pool);
  KvCache cache(t->model->config(), 10);
  KvCache* caches[] = {&cache};
  Batch b;
  for (int i = 0; i < 10; ++i) b.add(ids[i], i, 0, i == 4 || i == 9);
  std::vector<float> out;
  f.run(b, caches, out);
  const int64_t V = 101;
  ASSERT_EQ(out.size(), size_t(2 * V));
  for (int64_t v = 0; v < V; ++v) {
    EXPECT_NEAR(out[v], all[4 * V + v], 1e-4);
    EXPECT_NEAR(out[V + v], all[9 * V + v], 1e-4);
  }
}

// The AVX-512 attention kernel against the portable one on the same f16 rows: group sizes with and
// without a full score tile, head dims of 16..128, key counts around the 16-key blocks. Row pointers
// are shuffled (the kernel must not assume contiguous rows, as with a wrapped ring); the transposed
// key blocks of prefill must give exactly the row path's result.
// The AVX-512 path, or on CPUs without it the AVX2 one (kernels/avx2/attention_avx2.cpp).
TEST(ModelForward, AttentionKernelSimdEqualsPortable) {
  const auto& cf = kernels::cpu_features();
  if (!(cf.avx512f && cf.f16c) && !cf.avx2_kernels()) GTEST_SKIP() << "no AVX-512/F16C, no AVX2/FMA/F16C";
  std::mt19937 g(99);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto [group, hd] : {std::pair<int64_t, int64_t>{1, 128}, {2, 128}, {4, 128}, {8, 64}, {9, 32}, {3, 16}, {5, 48}}) {
    for (int64_t nk : {1, 2, 15, 16, 17, 100, 513}) {
      SCOPED_TRACE("group " + std::to_string(group) + " hd " + std::to_string(hd) + " keys " + std::to_string(nk));
      std::vector<float> q(group * hd);
      for (auto& x : q) x = 2.0f * nd(g);  // large enough that the softmax is far from uniform
      std::vector<uint16_t> k(nk * hd), v(nk * hd);
      for (auto& x : k) x = kernels::f32_to_f16(nd(g));
      for (auto& x : v) x = kernels::f32_to_f16(nd(g));
      std::vector<const uint16_t*> kr(nk), vr(nk);
      std::vector<int64_t> perm(nk);
      for (int64_t j = 0; j < nk; ++j) perm[j] = j;
      std::shuffle(perm.begin(), perm.end(), g);
      for (int64_t j = 0; j < nk; ++j) kr[j] = &k[perm[j] * hd], vr[j] = &v[perm[j] * hd];
      std::vector<float> scratch(attn::scratch_floats(group, hd, nk)), simd(group * hd), port(group * hd);
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      attn::attend(q.data(), group, hd, kr.data(), vr.data(), nk, scale, scratch.data(), simd.data());
      {
        PortableKernels portable;
        attn::attend(q.data(), group, hd, kr.data(), vr.data(), nk, scale, scratch.data(), port.data());
      }
      EXPECT_LT(max_abs_diff(simd, port), 2e-6);
      if (!attn::uses_key_blocks(hd)) continue;
      // The last `count` keys scored from a transposed copy (as prefill does with a chunk's own keys),
      // starting mid-block: keys `skip` .. `skip`+count-1 of the copy.
      for (int64_t count : {int64_t{1}, nk / 2, nk}) {
        if (count == 0) continue;
        const int64_t skip = 5;
        std::vector<int32_t> rows(skip + count);
        for (int64_t r = 0; r < skip + count; ++r) rows[r] = static_cast<int32_t>(r < skip ? 0 : perm[nk - count + r - skip]);
        std::vector<float> blocks(attn::key_blocks_floats(skip + count, hd)), blk(group * hd);
        attn::transpose_keys(k.data(), rows.data(), skip + count, hd, hd, blocks.data());
        attn::attend(q.data(), group, hd, kr.data(), vr.data(), nk, scale, scratch.data(), blk.data(),
                     attn::KeyBlocks{blocks.data(), skip, count});
        EXPECT_EQ(blk, simd) << "key blocks, count " << count;  // the same sums in the same order
      }
    }
  }
}

// The whole forward pass on a GQA model with head_dim 128 (Mistral's), SIMD vs portable kernels and
// both vs the naive reference, with a window shorter than the sequence and a chunk longer than it.
TEST(ModelForward, Avx512AttentionEqualsPortableHeadDim128) {
  ThreadPool pool(2);
  const int64_t W = 16;
  for (auto [h, kv] : {std::pair<int64_t, int64_t>{2, 1}, {4, 2}}) {
    SynthSpec spec = small_spec(DType::F32, h, kv);
    spec.dim = 256;
    spec.ff = 128;
    auto t = make(spec, W, pool);
    ASSERT_EQ(t->model->config().head_dim, 256 / h);
    auto ids = random_ids(40, 101, 8);
    auto ref = naive_logits(*t->model, ids, W);
    for (int64_t chunk : {1, 40}) {
      SCOPED_TRACE("heads " + std::to_string(h) + "/" + std::to_string(kv) + " chunk " + std::to_string(chunk));
      auto simd = wai_logits(t->model, ids, chunk, pool);
      std::vector<float> port;
      {
        PortableKernels portable;
        port = wai_logits(t->model, ids, chunk, pool);
      }
      // (The SIMD and portable f32 matmuls sum in different orders, so k/v differ by an ulp and the
      // half rounding flips as against the reference: kNaiveTol, not float rounding. The kernel
      // itself is held to 2e-6 by AttentionKernelSimdEqualsPortable.)
      EXPECT_LT(max_abs_diff(simd, port), kNaiveTol);
      EXPECT_LT(max_abs_diff(simd, ref), kNaiveTol);
      EXPECT_LT(max_abs_diff(port, ref), kNaiveTol);
    }
  }
}

TEST(ModelForward, BadInputThrowsAndLeavesCachesUntouched) {
  ThreadPool pool(1);
  auto t = make(small_spec(), 0, pool);
  Forward f(t->model, pool);
  KvCache cache(t->model->config(), 8);
  KvCache* caches[] = {&cache};
  std::vector<float> out;
  auto expect_invalid = [&](Batch b) {
    try {
      f.run(b, caches, out);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput) << e.what();
    }
    EXPECT_EQ(cache.n_past(), 0);
    EXPECT_TRUE(out.empty());
  };
  Batch b;
  b.add(1, 0, 0, true);
  b.add(101, 1, 0, true);  // token id == n_vocab
  expect_invalid(b);
  b.clear();
  b.add(-1, 0, 0, true);
  expect_invalid(b);
  b.clear();
  b.add(1, 1, 0, true);  // does not start at n_past
  expect_invalid(b);
  b.clear();
  b.add(1, 0, 0, true);
  b.add(2, 2, 0, true);  // gap
  expect_invalid(b);
  b.clear();
  b.add(1, 0, 1, true);  // no cache 1
  expect_invalid(b);
  b.clear();
  for (int i = 0; i < 9; ++i) b.add(1, i, 0, true);  // beyond max_positions
  expect_invalid(b);
  b.clear();
  b.add(1, 0, 0, true);
  b.pos.push_back(1);  // ragged vectors
  expect_invalid(b);

  // A valid batch still works after the rejections, and then positions must continue from 1.
  b.clear();
  b.add(1, 0, 0, false);
  f.run(b, caches, out);
  EXPECT_EQ(cache.n_past(), 1);
  EXPECT_TRUE(out.empty());
  b.clear();
  b.add(1, 0, 0, true);
  EXPECT_THROW(f.run(b, caches, out), Error);
  EXPECT_EQ(cache.n_past(), 1);
}

}  // namespace
}  // namespace wai::model
