// Loading a Llama/Mistral GGUF into a Model: metadata -> Config, tensors -> MatRefs into the mapping.
//
// Every tensor is checked for presence, a supported type and its exact shape before anything runs, so
// the forward pass can trust the weights. Norm weights are copied to f32 (they are tiny and read every
// token); matrices stay in their stored type and are read through the mapping.
#include "model/model.h"

#include <sys/mman.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "kernels/quant.h"
#include "kernels/repack.h"
#include "util/error.h"

namespace wai::model {
namespace {

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s = "{";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "}";
}

// Keys are "llama.*" (general.architecture = llama).
int64_t require_int(const gguf::File& f, const std::string& key) {
  auto v = f.get_int(key);
  if (!v) fail(ErrorKind::kNotFound, "model: missing metadata key '" + key + "'");
  return *v;
}

int64_t positive(int64_t v, const std::string& what, int64_t max = int64_t(1) << 24) {
  if (v <= 0 || v > max)
    invalid("model: " + what + " = " + std::to_string(v) + " is out of range [1, " + std::to_string(max) + "]");
  return v;
}

const gguf::TensorInfo& require_tensor(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  if (!t) fail(ErrorKind::kNotFound, "model: missing tensor '" + name + "'");
  return *t;
}

void check_shape(const gguf::TensorInfo& t, const std::vector<int64_t>& want) {
  if (t.dims != want)
    invalid("model: tensor '" + t.name + "' has shape " + shape_str(t.dims) + ", expected " + shape_str(want));
}

// A weight matrix [rows, cols] (ggml dims {cols, rows}) in a type the matmul kernels support.
kernels::MatRef matrix(const gguf::File& f, const std::string& name, int64_t rows, int64_t cols) {
  const auto& t = require_tensor(f, name);
  const auto& info = dtype_info(t.type);
  if (!info.supported || t.type == DType::Q8_K)
    fail(ErrorKind::kUnsupported, "model: tensor '" + name + "' has type " + std::string(info.name) +
                                      ", which wai does not support (f32 f16 bf16 q8_0 q4_0 q4_K q6_K)");
  check_shape(t, {cols, rows});
  auto rb = row_bytes(t.type, cols);
  if (!rb || *rb * static_cast<uint64_t>(rows) != t.nbytes)
    invalid("model: tensor '" + name + "' size does not match its shape and type");
  return kernels::MatRef{t.type, t.data, rows, cols};
}

// A norm weight [n] converted to f32.
std::vector<float> norm_vector(const gguf::File& f, const std::string& name, int64_t n) {
  const auto& t = require_tensor(f, name);
  check_shape(t, {n});
  if (t.type != DType::F32 && t.type != DType::F16 && t.type != DType::BF16)
    fail(ErrorKind::kUnsupported, "model: norm tensor '" + name + "' has type " + std::string(dtype_name(t.type)) +
                                      " (expected f32, f16 or bf16)");
  std::vector<float> out(static_cast<size_t>(n));
  kernels::dequantize_row(t.type, t.data, out.data(), n);
  for (float v : out)
    if (!std::isfinite(v)) invalid("model: norm tensor '" + name + "' holds a non-finite value");
  return out;
}

}  // namespace

std::shared_ptr<const Model> Model::load(const std::string& path, const LoadOptions& opts) {
  return from_file(gguf::File::open(path), opts);
}

std::shared_ptr<const Model> Model::from_file(gguf::File file, const LoadOptions& opts) {
  auto m = std::shared_ptr<Model>(new Model());
  m->file_ = std::move(file);
  const gguf::File& f = m->file_;
  Config& c = m->cfg_;

  auto arch = f.get_string("general.architecture");
  if (!arch) fail(ErrorKind::kNotFound, "model: missing metadata key 'general.architecture'");
  if (*arch != "llama")
    fail(ErrorKind::kUnsupported, "model: architecture '" + *arch + "' is not supported (only 'llama': Llama/Mistral)");

  c.dim = positive(require_int(f, "llama.embedding_length"), "llama.embedding_length");
  c.n_layers = positive(require_int(f, "llama.block_count"), "llama.block_count", 4096);
  c.ff = positive(require_int(f, "llama.feed_forward_length"), "llama.feed_forward_length");
  c.n_heads = positive(require_int(f, "llama.attention.head_count"), "llama.attention.head_count", 4096);
  c.n_kv_heads = positive(f.get_int("llama.attention.head_count_kv").value_or(c.n_heads),
                          "llama.attention.head_count_kv", 4096);
  if (c.dim % c.n_heads != 0)
    invalid("model: embedding_length " + std::to_string(c.dim) + " is not a multiple of head_count " + std::to_string(c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0)
    invalid("model: head_count " + std::to_string(c.n_heads) + " is not a multiple of head_count_kv " + std::to_string(c.n_kv_heads));
  c.head_dim = c.dim / c.n_heads;
  if (c.head_dim % 2 != 0) invalid("model: head dimension " + std::to_string(c.head_dim) + " is odd (RoPE rotates pairs)");
  if (auto rd = f.get_int("llama.rope.dimension_count"); rd && *rd != c.head_dim)
    fail(ErrorKind::kUnsupported, "model: llama.rope.dimension_count " + std::to_string(*rd) +
                                      " differs from the head dimension " + std::to_string(c.head_dim) + " (partial RoPE)");
  c.norm_eps = static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = static_cast<float>(f.get_float("llama.rope.freq_base").value_or(10000.0));
  if (!(c.norm_eps >= 0.0f) || !std::isfinite(c.norm_eps)) invalid("model: bad layer_norm_rms_epsilon");
  if (!(c.rope_theta > 0.0f) || !std::isfinite(c.rope_theta)) invalid("model: bad rope.freq_base");
  c.context_length = positive(f.get_int("llama.context_length").value_or(2048), "llama.context_length", int64_t(1) << 30);
  int64_t window = f.get_int("llama.attention.sliding_window").value_or(0);
  if (opts.sliding_window >= 0) window = opts.sliding_window;
  if (window < 0) invalid("model: negative sliding window " + std::to_string(window));
  c.sliding_window = window;

  // Vocabulary: the tokenizer's token list when present, else the embedding's row count; both must agree.
  const auto& embd = require_tensor(f, "token_embd.weight");
  if (embd.dims.size() != 2) invalid("model: tensor 'token_embd.weight' has shape " + shape_str(embd.dims) + ", expected 2 dims");
  c.n_vocab = embd.dims[1];
  if (const gguf::Array* toks = f.get_array("tokenizer.ggml.tokens")) {
    if (static_cast<int64_t>(toks->items.size()) != c.n_vocab)
      invalid("model: tokenizer has " + std::to_string(toks->items.size()) + " tokens but token_embd.weight has " +
              std::to_string(c.n_vocab) + " rows");
  }
  positive(c.n_vocab, "vocabulary size", int64_t(1) << 22);

  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  m->token_embd_ = matrix(f, "token_embd.weight", c.n_vocab, c.dim);
  m->output_ = f.find_tensor("output.weight") ? matrix(f, "output.weight", c.n_vocab, c.dim) : m->token_embd_;
  m->output_norm_ = norm_vector(f, "output_norm.weight", c.dim);

  m->norms_.reserve(static_cast<size_t>(2 * c.n_layers));
  m->layers_.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights& L = m->layers_[static_cast<size_t>(l)];
    m->norms_.push_back(norm_vector(f, p + "attn_norm.weight", c.dim));
    L.attn_norm = m->norms_.back().data();
    m->norms_.push_back(norm_vector(f, p + "ffn_norm.weight", c.dim));
    L.ffn_norm = m->norms_.back().data();
    L.wq = matrix(f, p + "attn_q.weight", q_dim, c.dim);
    L.wk = matrix(f, p + "attn_k.weight", kv_dim, c.dim);
    L.wv = matrix(f, p + "attn_v.weight", kv_dim, c.dim);
    L.wo = matrix(f, p + "attn_output.weight", c.dim, q_dim);
    L.w_gate = matrix(f, p + "ffn_gate.weight", c.ff, c.dim);
    L.w_up = matrix(f, p + "ffn_up.weight", c.ff, c.dim);
    L.w_down = matrix(f, p + "ffn_down.weight", c.dim, c.ff);
  }
  if (opts.copy_weights) m->copy_weights_to_anonymous_memory();
  if (opts.repack) {
    std::vector<kernels::MatRef*> mats;  // in the order a forward pass reads them
    for (auto& L : m->layers_)
      for (auto* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
        if (kernels::x16_available(*w)) mats.push_back(w);
    if (kernels::x16_available(m->output_)) mats.push_back(&m->output_);
    if (!mats.empty())
      m->repack_ = std::make_unique<WeightRepack>(mats, f.mapped() && !opts.copy_weights, opts.repack_threads);
  }
  return m;
}

void Model::copy_weights_to_anonymous_memory() {
  // The tensor data section [data_offset, size) of the file, copied whole; every MatRef is rebased.
  const std::span<const uint8_t> bytes = file_.bytes();
  const uint8_t* src = bytes.data() + file_.data_offset();
  const size_t n = bytes.size() - file_.data_offset();
  if (n == 0) return;
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(ErrorKind::kResource, "model: cannot allocate " + std::to_string(n) + " bytes for the weights copy");
  madvise(p, n, MADV_HUGEPAGE);  // best effort: THP may be off ("never"), the copy still works
  std::memcpy(p, src, n);
  mprotect(p, n, PROT_READ);
  weights_copy_ = std::shared_ptr<void>(p, [n](void* q) { munmap(q, n); });
  auto* dst = static_cast<const uint8_t*>(p);
  auto rebase = [&](kernels::MatRef& w) { w.data = dst + (w.data - src); };
  rebase(token_embd_);
  rebase(output_);
  for (auto& L : layers_)
    for (auto* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) rebase(*w);
}

DType Model::weight_type() const {
  // The most common type among the layer matrices, counted by elements.
  std::map<DType, int64_t> count;
  for (const auto& L : layers_)
    for (const auto* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) count[w->type] += w->rows * w->cols;
  DType best = token_embd_.type;
  int64_t best_n = -1;
  for (auto [t, n] : count)
    if (n > best_n) best = t, best_n = n;
  return best;
}

}  // namespace wai::model
