// The background q4_0 repack of a loaded model (model/weight_repack.h): which matrices it takes,
// that a forward pass gives the same bits before, during and after it, that the file mapping's pages
// it drops read back intact, and that a model destroyed mid-repack stops it cleanly.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/repack.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "util/thread_pool.h"
#include "unit/forward_logits.h"

namespace wai::model {
namespace {

// Every matrix repackable (rows % 16, cols % 64) except the 101-row output head.
SynthSpec q4_spec(int64_t layers = 2, DType type = DType::Q4_0) {
  SynthSpec s;
  s.dim = 128;
  s.n_layers = layers;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ff = 256;
  s.n_vocab = 101;
  s.type = type;
  s.seed = 11;
  return s;
}

std::vector<int32_t> ids(int n) {
  std::mt19937 g(5);
  std::vector<int32_t> v(n);
  for (auto& id : v) id = static_cast<int32_t>(g() % 101);
  return v;
}

std::vector<const kernels::MatRef*> matrices(const Model& m) {
  std::vector<const kernels::MatRef*> out;
  for (const auto& L : m.layers())
    for (const auto* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) out.push_back(w);
  out.push_back(&m.output());
  return out;
}

bool q4x16_cpu() {
  std::vector<uint8_t> b(1);
  return kernels::q4x16_available({DType::Q4_0, b.data(), 16, 64});
}

TEST(ModelRepack, TakesEveryRepackableMatrix) {
  if (!q4x16_cpu()) GTEST_SKIP() << "no AVX-512 VNNI: nothing is repacked";
  ThreadPool pool(2);
  for (DType type : {DType::Q4_0, DType::Q8_0}) {
  SCOPED_TRACE(std::string(dtype_name(type)));
  const auto bytes = synthetic_bytes(q4_spec(2, type), nullptr, pool);
  auto m = Model::from_file(gguf::File::parse(bytes));
  ASSERT_NE(m->repack(), nullptr);
  m->wait_for_repack();
  EXPECT_TRUE(m->repack()->done());
  size_t want = 0;
  for (const auto* w : matrices(*m)) {
    const bool take = w->rows % 16 == 0 && w->cols % (type == DType::Q4_0 ? 64 : 32) == 0;
    const auto x16 = type == DType::Q4_0 ? kernels::MatLayout::kQ4x16 : kernels::MatLayout::kQ8x16;
    EXPECT_EQ(kernels::current(*w).layout, take ? x16 : kernels::MatLayout::kRows)
        << w->rows << " x " << w->cols;
    EXPECT_EQ(w->layout, kernels::MatLayout::kRows);  // the MatRef itself still describes GGUF's copy
    if (take) want += *row_bytes(w->type, w->cols) * w->rows;
  }
  EXPECT_EQ(m->repack()->bytes(), want);

  LoadOptions off;
  off.repack = false;
  auto plain = Model::from_file(gguf::File::parse(bytes), off);
  EXPECT_EQ(plain->repack(), nullptr);
  for (const auto* w : matrices(*plain)) EXPECT_EQ(kernels::current(*w).layout, kernels::MatLayout::kRows);
  }
}

// Right after the load (repack in flight or done) and after it: the same bits, for decode steps and
// for a prefill chunk. Against the model without a repack (the matrix-vector kernel: the same block
// products in another f32 order) only close: each layer re-quantizes its input to q8_0, a
// discontinuous step where a last-bit difference moves a quant, and over 4 layers and 40 positions
// logits move by ~0.01 on average (measured: the same as between any SIMD path and the portable one;
// test_model_forward allows 0.25 for the same reason).
TEST(ModelRepack, SameLogitsBeforeDuringAndAfter) {
  ThreadPool pool(2);
  for (DType type : {DType::Q4_0, DType::Q8_0}) {
  SCOPED_TRACE(std::string(dtype_name(type)));
  const auto bytes = synthetic_bytes(q4_spec(4, type), nullptr, pool);
  const auto seq = ids(40);
  for (int64_t chunk : {int64_t{1}, int64_t{20}}) {
    auto m = Model::from_file(gguf::File::parse(bytes));
    const auto early = forward_logits(m, seq, chunk, pool);
    m->wait_for_repack();
    EXPECT_EQ(forward_logits(m, seq, chunk, pool), early) << "chunk " << chunk;
    LoadOptions off;
    off.repack = false;
    const auto plain = forward_logits(Model::from_file(gguf::File::parse(bytes), off), seq, chunk, pool);
    ASSERT_EQ(plain.size(), early.size());
    for (size_t i = 0; i < plain.size(); ++i) ASSERT_NEAR(plain[i], early[i], 0.25) << "chunk " << chunk << " at " << i;
  }
  }
}

// A model loaded from a file: the repack drops the mapping's pages of every matrix it published;
// reading GGUF's copy afterwards (as the embedding lookup and the tests' references do) still sees
// the file's bytes, and the logits equal those of the in-memory model.
TEST(ModelRepack, FileMappedModelDropsPagesAndReadsThemBack) {
  if (!q4x16_cpu()) GTEST_SKIP() << "no AVX-512 VNNI: nothing is repacked";
  ThreadPool pool(2);
  const auto spec = q4_spec(3);
  const std::string path = (std::filesystem::temp_directory_path() / ("wai_repack_" + std::to_string(getpid()) + ".gguf")).string();
  write_synthetic(spec, nullptr, path, pool);
  const auto bytes = synthetic_bytes(spec, nullptr, pool);
  {
    auto m = Model::load(path);
    m->wait_for_repack();
    auto mem = Model::from_file(gguf::File::parse(bytes));
    mem->wait_for_repack();
    const auto mm = matrices(*m), mref = matrices(*mem);
    for (size_t i = 0; i < mm.size(); ++i) {
      const size_t n = *row_bytes(mm[i]->type, mm[i]->cols) * mm[i]->rows;
      ASSERT_EQ(0, std::memcmp(mm[i]->data, mref[i]->data, n)) << "matrix " << i;
    }
    EXPECT_EQ(forward_logits(m, ids(24), 1, pool), forward_logits(mem, ids(24), 1, pool));
  }
  std::filesystem::remove(path);
}

// Destroying a model while its repack runs stops the thread between row groups; nothing leaks or
// touches freed memory (the sanitizer build runs this too).
TEST(ModelRepack, DestroyedWhileRepacking) {
  ThreadPool pool(2);
  SynthSpec s = q4_spec(8);
  s.dim = 512;
  s.ff = 1536;
  const auto bytes = synthetic_bytes(s, nullptr, pool);
  for (int i = 0; i < 5; ++i) {
    auto m = Model::from_file(gguf::File::parse(bytes));
    if (i % 2) (void)forward_logits(m, ids(2), 1, pool);
  }
}

}  // namespace
}  // namespace wai::model
