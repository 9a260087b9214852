#include "model/synthetic.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string_view>

#include "format/gguf_writer.h"
#include "kernels/quant.h"
#include "util/error.h"

namespace wai::model {
namespace {

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One tensor to generate: values center + U(-a, a) (std a / sqrt(3)), stored in `type`.
struct Plan {
  std::string name;
  std::vector<int64_t> dims;  // ggml order {cols, rows} or {n}
  DType type;
  float center, half_width;
  size_t offset = 0, nbytes = 0;  // in the arena
};

// Row r of tensor `name` as f32: a pure function of (seed, name, r).
void gen_row(uint64_t seed, uint64_t name_hash, int64_t r, float center, float a, float* out, int64_t n) {
  uint64_t s = seed * 0xD1B54A32D192ED03ull ^ name_hash ^ (static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull);
  splitmix64(s);
  constexpr float k = 1.0f / 16777216.0f;  // 2^-24
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t z = splitmix64(s);
    out[i] = center + a * (2.0f * static_cast<float>(z >> 40) * k - 1.0f);
    if (i + 1 < n) out[i + 1] = center + a * (2.0f * static_cast<float>((z >> 8) & 0xFFFFFF) * k - 1.0f);
  }
}

// The type a matrix with rows of `cols` is stored in: `want` when cols fits its blocks, else q8_0,
// else f16.
DType fit_type(DType want, int64_t cols) {
  if (cols % dtype_info(want).block_size == 0) return want;
  if (cols % 32 == 0) return DType::Q8_0;
  return DType::F16;
}

// Bytes the tensors live in until the writer has copied them out: a vector, or for big models an
// unlinked temporary file mapped shared (page cache, written back and evicted by the kernel as needed).
class Arena {
 public:
  Arena(size_t size, const std::string& near_path) : size_(size) {
    if (size_ <= (size_t(256) << 20) || near_path.empty()) {
      vec_.assign(size_, 0);
      data_ = vec_.data();
      return;
    }
    std::string tmpl = near_path + ".tmp-XXXXXX";
    fd_ = mkstemp(tmpl.data());
    if (fd_ < 0) fail(ErrorKind::kIo, "make-model: cannot create a temporary file next to '" + near_path + "': " + std::strerror(errno));
    unlink(tmpl.c_str());  // the mapping keeps the data; the file disappears on close
    if (ftruncate(fd_, static_cast<off_t>(size_)) != 0)
      fail(ErrorKind::kIo, "make-model: cannot size the temporary file: " + std::string(std::strerror(errno)));
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) fail(ErrorKind::kIo, "make-model: cannot map the temporary file: " + std::string(std::strerror(errno)));
    data_ = static_cast<uint8_t*>(p);
  }
  ~Arena() {
    if (fd_ >= 0) {
      if (data_) munmap(data_, size_);
      close(fd_);
    }
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  uint8_t* data() { return data_; }

 private:
  size_t size_;
  std::vector<uint8_t> vec_;
  uint8_t* data_ = nullptr;
  int fd_ = -1;
};

void check_spec(const SynthSpec& s, int64_t n_vocab) {
  auto bad = [](const std::string& m) { invalid("make-model: " + m); };
  if (s.dim <= 0 || s.n_layers <= 0 || s.n_heads <= 0 || s.n_kv_heads <= 0 || s.ff <= 0 || n_vocab <= 0)
    bad("dim, layers, heads, kv-heads, ff and the vocabulary size must be positive");
  if (s.dim % s.n_heads != 0) bad("dim " + std::to_string(s.dim) + " is not a multiple of heads " + std::to_string(s.n_heads));
  if (s.n_heads % s.n_kv_heads != 0) bad("heads is not a multiple of kv-heads");
  if ((s.dim / s.n_heads) % 2 != 0) bad("the head dimension dim/heads must be even");
  if (s.dim > 65536 || s.ff > 262144 || s.n_layers > 1024 || n_vocab > (1 << 22)) bad("shape too large");
  if (s.context_length <= 0 || s.sliding_window < 0) bad("context must be positive and the sliding window >= 0");
  if (s.type == DType::Q8_K || !dtype_info(s.type).supported) bad("unsupported weight type " + std::string(dtype_name(s.type)));
}

// Builds the writer's metadata and the tensor plans, generates every tensor into the arena, then hands
// the writer spans into it and lets `emit` write the file or the bytes.
template <class Emit>
void build(const SynthSpec& spec, const gguf::File* vocab, const std::string& near_path, ThreadPool& pool,
           std::vector<std::string>* notes, Emit emit) {
  int64_t n_vocab = spec.n_vocab;
  const gguf::Array* tokens = vocab ? vocab->get_array("tokenizer.ggml.tokens") : nullptr;
  if (vocab && !tokens) invalid("make-model: the vocab file has no tokenizer.ggml.tokens array");
  if (tokens) n_vocab = static_cast<int64_t>(tokens->items.size());
  check_spec(spec, n_vocab);
  const int64_t dim = spec.dim, hd = spec.dim / spec.n_heads, kv_dim = spec.n_kv_heads * hd, ff = spec.ff;

  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "wai random model");
  w.set_string("general.description",
               "random weights from wai make-model: seed " + std::to_string(spec.seed) + ", type " +
                   std::string(dtype_name(spec.type)));
  w.set_u32("llama.vocab_size", static_cast<uint32_t>(n_vocab));
  w.set_u32("llama.context_length", static_cast<uint32_t>(spec.context_length));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(dim));
  w.set_u32("llama.block_count", static_cast<uint32_t>(spec.n_layers));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(ff));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(spec.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(spec.n_kv_heads));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", spec.norm_eps);
  w.set_f32("llama.rope.freq_base", spec.rope_theta);
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(hd));
  if (spec.sliding_window > 0) w.set_u32("llama.attention.sliding_window", static_cast<uint32_t>(spec.sliding_window));
  if (vocab)
    for (const auto& kv : vocab->metadata())
      if (kv.key.rfind("tokenizer.", 0) == 0) w.set(kv.key, kv.value);

  std::vector<Plan> plans;
  const float k3 = std::sqrt(3.0f);  // U(-a, a) has std a / sqrt(3)
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, float std_dev) {
    DType t = fit_type(spec.type, cols);
    if (t != spec.type && notes)
      notes->push_back(name + ": row length " + std::to_string(cols) + " is not a multiple of the " +
                       std::string(dtype_name(spec.type)) + " block size " +
                       std::to_string(dtype_info(spec.type).block_size) + "; written as " + std::string(dtype_name(t)));
    plans.push_back({name, {cols, rows}, t, 0.0f, std_dev * k3});
  };
  auto norm = [&](const std::string& name) { plans.push_back({name, {dim}, DType::F32, 1.0f, 0.1f}); };

  matrix("token_embd.weight", n_vocab, dim, 1.0f);
  for (int64_t l = 0; l < spec.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    matrix(p + "attn_q.weight", dim, dim, 1.0f / std::sqrt(float(dim)));
    matrix(p + "attn_k.weight", kv_dim, dim, 1.0f / std::sqrt(float(dim)));
    matrix(p + "attn_v.weight", kv_dim, dim, 1.0f / std::sqrt(float(dim)));
    matrix(p + "attn_output.weight", dim, dim, 1.0f / std::sqrt(float(dim)));
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn_gate.weight", ff, dim, 1.0f / std::sqrt(float(dim)));
    matrix(p + "ffn_up.weight", ff, dim, 1.0f / std::sqrt(float(dim)));
    matrix(p + "ffn_down.weight", dim, ff, 1.0f / std::sqrt(float(ff)));
  }
  norm("output_norm.weight");
  if (!spec.tie_output) matrix("output.weight", n_vocab, dim, spec.output_scale / std::sqrt(float(dim)));

  size_t total = 0;
  for (auto& p : plans) {
    const int64_t rows = p.dims.size() > 1 ? p.dims[1] : 1;
    p.nbytes = *row_bytes(p.type, p.dims[0]) * static_cast<size_t>(rows);
    p.offset = total;
    total += (p.nbytes + 63) / 64 * 64;
  }
  Arena arena(total, near_path);
  for (const auto& p : plans) {
    const int64_t cols = p.dims[0], rows = p.dims.size() > 1 ? p.dims[1] : 1;
    const size_t rb = *row_bytes(p.type, cols);
    uint8_t* dst = arena.data() + p.offset;
    const uint64_t h = fnv1a(p.name);
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = r0; r < r1; ++r) {
        gen_row(spec.seed, h, r, p.center, p.half_width, row.data(), cols);
        kernels::quantize_row(p.type, row.data(), dst + static_cast<size_t>(r) * rb, cols);
      }
    }, 16);
    w.add_tensor(p.name, p.dims, p.type, {dst, p.nbytes});
  }
  emit(w);
}

}  // namespace

SynthSpec SynthSpec::mistral_7b() {
  SynthSpec s;
  s.dim = 4096;
  s.n_layers = 32;
  s.n_heads = 32;
  s.n_kv_heads = 8;
  s.ff = 14336;
  s.context_length = 32768;
  s.sliding_window = 4096;
  s.norm_eps = 1e-5f;
  s.rope_theta = 10000.0f;
  return s;
}

void write_synthetic(const SynthSpec& spec, const gguf::File* vocab, const std::string& path, ThreadPool& pool,
                     std::vector<std::string>* notes) {
  build(spec, vocab, path, pool, notes, [&](const gguf::Writer& w) { w.write(path); });
}

std::vector<uint8_t> synthetic_bytes(const SynthSpec& spec, const gguf::File* vocab, ThreadPool& pool,
                                     std::vector<std::string>* notes) {
  std::vector<uint8_t> out;
  build(spec, vocab, "", pool, notes, [&](const gguf::Writer& w) { out = w.to_bytes(); });
  return out;
}

}  // namespace wai::model
