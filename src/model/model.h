// The Llama/Mistral transformer as GGUF stores it (general.architecture = "llama").
//
// Tensors (ggml dims order, innermost first; shapes below are [rows, cols] = {cols, rows}):
//   token_embd.weight        [n_vocab, dim]
//   blk.L.attn_norm.weight   [dim]
//   blk.L.attn_q.weight      [n_heads * head_dim, dim]
//   blk.L.attn_k.weight      [n_kv_heads * head_dim, dim]
//   blk.L.attn_v.weight      [n_kv_heads * head_dim, dim]
//   blk.L.attn_output.weight [dim, n_heads * head_dim]
//   blk.L.ffn_norm.weight    [dim]
//   blk.L.ffn_gate.weight    [ff, dim]   (W1)
//   blk.L.ffn_up.weight      [ff, dim]   (W3)
//   blk.L.ffn_down.weight    [dim, ff]   (W2)
//   output_norm.weight       [dim]
//   output.weight            [n_vocab, dim]  (absent: tied to token_embd)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "kernels/matmul.h"
#include "model/weight_repack.h"

namespace wai::model {

struct Config {
  int64_t n_vocab = 0;
  int64_t dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // == n_heads: MHA; 1: MQA; between: GQA (query head h uses kv head h / (n_heads / n_kv_heads))
  int64_t head_dim = 0;
  int64_t ff = 0;
  int64_t context_length = 0;  // trained context (llama.context_length)
  int64_t sliding_window = 0;  // 0 = full causal attention
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
};

struct LoadOptions {
  // Overrides llama.attention.sliding_window when >= 0 (0 turns the window off).
  int64_t sliding_window = -1;
  // Copy the weights out of the file mapping into anonymous memory backed by transparent huge pages
  // (llama.cpp's --no-mmap). Costs a copy at load time; decode streams the weights through 2 MiB
  // pages instead of 4 KiB page-cache pages (far fewer TLB misses). Default: keep the zero-copy mmap.
  bool copy_weights = false;
  // Regroup q4_0 and q8_0 matrices into the layouts the AVX-512 kernels stream fastest
  // (kernels/repack.h), on background threads after the load returns (model/weight_repack.h). Results are bit-identical
  // before, during and after it. Off: GGUF's layout throughout.
  bool repack = true;
  // Its threads (nice 10: below the serving threads). Most of its time is the kernel zeroing the
  // new copy's pages, which two threads halve.
  int repack_threads = 2;
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // [dim], f32 (norm weights are converted to f32 at load)
  kernels::MatRef wq, wk, wv, wo;
  const float* ffn_norm = nullptr;
  kernels::MatRef w_gate, w_up, w_down;
};

class Model {
 public:
  // Loads a GGUF file (mmap; weights stay in their stored type). Throws wai::Error naming the missing
  // key/tensor or the shape mismatch.
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& opts = {});
  static std::shared_ptr<const Model> from_file(gguf::File file, const LoadOptions& opts = {});

  const Config& config() const { return cfg_; }
  const gguf::File& file() const { return file_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const kernels::MatRef& token_embd() const { return token_embd_; }
  const kernels::MatRef& output() const { return output_; }
  const float* output_norm() const { return output_norm_.data(); }
  DType weight_type() const;  // type of most weights (for display)

  // The background repack (LoadOptions::repack), or null when nothing is repacked.
  const WeightRepack* repack() const { return repack_.get(); }
  void wait_for_repack() const {
    if (repack_) repack_->wait();
  }

 private:
  void copy_weights_to_anonymous_memory();
  Config cfg_;
  gguf::File file_;
  kernels::MatRef token_embd_, output_;
  std::vector<float> output_norm_;
  std::vector<std::vector<float>> norms_;  // owned f32 copies of norm weights
  std::vector<LayerWeights> layers_;
  std::shared_ptr<void> weights_copy_;  // owns the anonymous copy when LoadOptions::copy_weights
  // Last: destroyed (thread stopped and joined) before the MatRefs and the mapping it reads.
  std::unique_ptr<WeightRepack> repack_;
};

}  // namespace wai::model
