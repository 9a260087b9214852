// Loading and validating Llama GGUFs: shapes and keys from metadata, every tensor checked (presence,
// supported type, shape) with errors that name it; the synthetic writer's determinism and fallbacks;
// the real stories260K model; `wai make-model` output.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

#include "format/gguf_writer.h"
#include "model/model.h"
#include "model/forward.h"
#include "model/kv/kv_cache.h"
#include "model/synthetic.h"
#include "util/error.h"

namespace wai::model {
namespace {

SynthSpec spec_gqa() {
  SynthSpec s;
  s.dim = 64;
  s.n_layers = 2;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ff = 96;
  s.n_vocab = 50;
  return s;
}

// Rewrites a GGUF: `meta` may edit the metadata list, `tensor` may skip (return false) or edit a tensor.
struct Edited {
  std::vector<uint8_t> bytes;
  std::vector<std::vector<uint8_t>> owned;
};
Edited rewrite(const std::vector<uint8_t>& src, const std::function<void(std::vector<gguf::KeyValue>&)>& meta,
               const std::function<bool(gguf::TensorInfo&, std::vector<uint8_t>&)>& tensor) {
  gguf::File f = gguf::File::parse(src);
  std::vector<gguf::KeyValue> kv = f.metadata();
  if (meta) meta(kv);
  gguf::Writer w;
  for (auto& e : kv) w.set(e.key, e.value);
  Edited out;
  out.owned.reserve(f.tensors().size());
  for (gguf::TensorInfo t : f.tensors()) {
    std::vector<uint8_t> data(t.data, t.data + t.nbytes);
    if (tensor && !tensor(t, data)) continue;
    out.owned.push_back(std::move(data));
    w.add_tensor(t.name, t.dims, t.type, out.owned.back());
  }
  out.bytes = w.to_bytes();
  return out;
}

void expect_error(const std::vector<uint8_t>& bytes, ErrorKind kind, const std::string& needle) {
  try {
    Model::from_file(gguf::File::parse(bytes));
    ADD_FAILURE() << "loaded without error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ModelLoad, ConfigFromMetadata) {
  ThreadPool pool(2);
  SynthSpec s = spec_gqa();
  s.sliding_window = 32;
  s.rope_theta = 1e6f;
  s.context_length = 1234;
  auto bytes = synthetic_bytes(s, nullptr, pool);
  auto m = Model::from_file(gguf::File::parse(bytes));
  const Config& c = m->config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.ff, 96);
  EXPECT_EQ(c.n_vocab, 50);
  EXPECT_EQ(c.sliding_window, 32);
  EXPECT_EQ(c.context_length, 1234);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(m->layers().size(), 2u);
  EXPECT_NE(m->output().data, m->token_embd().data);
  // LoadOptions overrides the file's window, 0 turns it off.
  LoadOptions lo;
  lo.sliding_window = 0;
  EXPECT_EQ(Model::from_file(gguf::File::parse(bytes), lo)->config().sliding_window, 0);
}

// LoadOptions::copy_weights moves every matrix into anonymous memory and changes nothing else.
TEST(ModelLoad, CopiedWeightsGiveTheSameLogits) {
  ThreadPool pool(2);
  auto bytes = synthetic_bytes(spec_gqa(), nullptr, pool);
  LoadOptions copy;
  copy.copy_weights = true;
  auto mapped = Model::from_file(gguf::File::parse(bytes));
  auto copied = Model::from_file(gguf::File::parse(bytes), copy);
  const uint8_t* b0 = bytes.data();
  const uint8_t* b1 = b0 + bytes.size();
  EXPECT_TRUE(copied->layers()[0].wq.data < b0 || copied->layers()[0].wq.data >= b1);
  EXPECT_TRUE(copied->output().data < b0 || copied->output().data >= b1);
  auto logits = [&](std::shared_ptr<const Model> m) {
    KvCache kv(m->config(), 16);
    Forward fwd(m, pool);
    Batch b;
    for (int i = 0; i < 6; ++i) b.add(3 + 5 * i, i, 0, true);
    std::vector<float> out;
    KvCache* caches[] = {&kv};
    fwd.run(b, caches, out);
    return out;
  };
  EXPECT_EQ(logits(mapped), logits(copied));
}

TEST(ModelLoad, TiedOutputUsesEmbedding) {
  ThreadPool pool(1);
  SynthSpec s = spec_gqa();
  s.tie_output = true;
  auto bytes = synthetic_bytes(s, nullptr, pool);
  auto m = Model::from_file(gguf::File::parse(bytes));
  EXPECT_EQ(m->output().data, m->token_embd().data);
}

TEST(ModelLoad, SyntheticIsDeterministicAndFallsBack) {
  ThreadPool one(1), two(2);
  SynthSpec s = spec_gqa();
  s.type = DType::Q4_0;
  EXPECT_EQ(synthetic_bytes(s, nullptr, one), synthetic_bytes(s, nullptr, two));
  SynthSpec s2 = s;
  s2.seed = 2;
  EXPECT_NE(synthetic_bytes(s, nullptr, one), synthetic_bytes(s2, nullptr, one));

  // Rows of 64 or 96 do not fit q4_K's 256-element blocks: q8_0 instead, with a note per tensor.
  s.type = DType::Q4_K;
  std::vector<std::string> notes;
  auto bytes = synthetic_bytes(s, nullptr, one, &notes);
  EXPECT_EQ(notes.size(), 2u + 2 * 7);  // embedding, output, 7 matrices per layer
  auto m = Model::from_file(gguf::File::parse(bytes));
  EXPECT_EQ(m->layers()[0].wq.type, DType::Q8_0);
  EXPECT_EQ(m->weight_type(), DType::Q8_0);

  s.dim = 256;
  s.ff = 512;
  notes.clear();
  auto k = Model::from_file(gguf::File::parse(synthetic_bytes(s, nullptr, one, &notes)));
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(k->layers()[1].w_down.type, DType::Q4_K);
}

TEST(ModelLoad, BadSpecThrows) {
  ThreadPool pool(1);
  SynthSpec s = spec_gqa();
  s.n_kv_heads = 3;
  EXPECT_THROW(synthetic_bytes(s, nullptr, pool), Error);
  s = spec_gqa();
  s.n_heads = 5;
  EXPECT_THROW(synthetic_bytes(s, nullptr, pool), Error);
  s = spec_gqa();
  s.n_vocab = 0;
  EXPECT_THROW(synthetic_bytes(s, nullptr, pool), Error);
}

TEST(ModelLoad, ErrorsNameTheProblem) {
  ThreadPool pool(1);
  auto good = synthetic_bytes(spec_gqa(), nullptr, pool);
  auto set_key = [](const std::string& key, gguf::Value v) {
    return [key, v](std::vector<gguf::KeyValue>& kv) {
      for (auto& e : kv)
        if (e.key == key) e.value = v;
    };
  };
  auto drop_key = [](const std::string& key) {
    return [key](std::vector<gguf::KeyValue>& kv) { std::erase_if(kv, [&](auto& e) { return e.key == key; }); };
  };

  expect_error(rewrite(good, set_key("general.architecture", {gguf::ValueType::STRING, std::string("gpt2")}), nullptr).bytes,
               ErrorKind::kUnsupported, "gpt2");
  expect_error(rewrite(good, drop_key("llama.embedding_length"), nullptr).bytes, ErrorKind::kNotFound,
               "llama.embedding_length");
  expect_error(rewrite(good, set_key("llama.attention.head_count", {gguf::ValueType::U32, uint64_t{5}}), nullptr).bytes,
               ErrorKind::kInvalidInput, "head_count");
  expect_error(rewrite(good, set_key("llama.attention.head_count_kv", {gguf::ValueType::U32, uint64_t{3}}), nullptr).bytes,
               ErrorKind::kInvalidInput, "head_count_kv");
  // head_count_kv 4 makes attn_k/attn_v the wrong shape.
  expect_error(rewrite(good, set_key("llama.attention.head_count_kv", {gguf::ValueType::U32, uint64_t{4}}), nullptr).bytes,
               ErrorKind::kInvalidInput, "blk.0.attn_k.weight");
  expect_error(rewrite(good, set_key("llama.rope.dimension_count", {gguf::ValueType::U32, uint64_t{8}}), nullptr).bytes,
               ErrorKind::kUnsupported, "dimension_count");
  expect_error(rewrite(good, nullptr, [](gguf::TensorInfo& t, auto&) { return t.name != "blk.1.ffn_up.weight"; }).bytes,
               ErrorKind::kNotFound, "blk.1.ffn_up.weight");
  expect_error(rewrite(good, nullptr, [](gguf::TensorInfo& t, auto&) { return t.name != "output_norm.weight"; }).bytes,
               ErrorKind::kNotFound, "output_norm.weight");
  // ffn_down stored transposed ({ff, dim} instead of {dim, ff}).
  expect_error(rewrite(good, nullptr,
                       [](gguf::TensorInfo& t, auto&) {
                         if (t.name == "blk.0.ffn_down.weight") std::swap(t.dims[0], t.dims[1]);
                         return true;
                       }).bytes,
               ErrorKind::kInvalidInput, "blk.0.ffn_down.weight");
  // A weight in q4_1 (known to GGUF, no kernels in wai): 64 cols = 2 blocks of 20 bytes per row.
  expect_error(rewrite(good, nullptr,
                       [](gguf::TensorInfo& t, std::vector<uint8_t>& d) {
                         if (t.name == "blk.0.attn_q.weight") {
                           t.type = DType::Q4_1;
                           d.assign(64 * 40, 0);
                         }
                         return true;
                       }).bytes,
               ErrorKind::kUnsupported, "q4_1");
  // A norm in q8_0 is refused.
  expect_error(rewrite(good, nullptr,
                       [](gguf::TensorInfo& t, std::vector<uint8_t>& d) {
                         if (t.name == "blk.1.attn_norm.weight") {
                           t.type = DType::Q8_0;
                           d.assign(2 * 34, 0);
                         }
                         return true;
                       }).bytes,
               ErrorKind::kUnsupported, "blk.1.attn_norm.weight");
  // Tokenizer list disagreeing with the embedding.
  expect_error(rewrite(good,
                       [](std::vector<gguf::KeyValue>& kv) {
                         gguf::Array a{gguf::ValueType::STRING, {}};
                         for (int i = 0; i < 49; ++i) a.items.push_back({gguf::ValueType::STRING, std::string("t")});
                         kv.push_back({"tokenizer.ggml.tokens", {gguf::ValueType::ARRAY, a}});
                       },
                       nullptr).bytes,
               ErrorKind::kInvalidInput, "49 tokens");
}

TEST(ModelLoad, Stories260K) {
  auto m = Model::load(std::string(WAI_SHARED_DIR) + "/models/stories260K.gguf");
  const Config& c = m->config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(ModelLoad, MakeModelCommandCopiesTokenizer) {
  namespace fs = std::filesystem;
  fs::create_directories(WAI_TEST_TMP);
  const std::string out = std::string(WAI_TEST_TMP) + "/model_load_make.gguf";
  const std::string vocab = std::string(WAI_SHARED_DIR) + "/models/stories260K.gguf";
  const std::string cmd = std::string(WAI_BIN) + " make-model " + out + " --vocab " + vocab +
                          " --dim 64 --layers 1 --heads 4 --kv-heads 1 --ff 64 --type q8_0 --sliding-window 8 --seed 3 -t 1 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto m = Model::load(out);
  auto v = gguf::File::open(vocab);
  EXPECT_EQ(m->config().n_vocab, 512);
  EXPECT_EQ(m->config().n_kv_heads, 1);
  EXPECT_EQ(m->config().sliding_window, 8);
  EXPECT_EQ(m->weight_type(), DType::Q8_0);
  for (const auto& kv : v.metadata()) {
    if (kv.key.rfind("tokenizer.", 0) != 0) continue;
    const gguf::Value* got = m->file().find(kv.key);
    ASSERT_NE(got, nullptr) << kv.key;
    EXPECT_EQ(got->to_string(1 << 20), kv.value.to_string(1 << 20)) << kv.key;
  }
  // Bad arguments fail with a message, not a crash.
  EXPECT_NE(std::system((std::string(WAI_BIN) + " make-model " + out + " --vocab " + vocab +
                         " --dim 64 --layers 1 --heads 3 --ff 64 2>/dev/null").c_str()), 0);
  fs::remove(out);
}

}  // namespace
}  // namespace wai::model
