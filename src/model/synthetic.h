// Random-weight Llama/Mistral models in GGUF (`wai make-model`, unit tests, benchmarks).
//
// Weights are deterministic functions of (seed, tensor name, row): the same spec always gives the
// same file, whatever the thread count. Scales keep activations finite and logits peaked:
//   token_embd ~ U with std 1;  wq/wk/wv/w_gate/w_up ~ std 1/sqrt(dim);  wo ~ 1/sqrt(n_heads*head_dim);
//   w_down ~ 1/sqrt(ff);  output ~ output_scale/sqrt(dim) (so top-1 margins are clear);
//   norms: f32, 1 + U(-0.1, 0.1).
// Matrices are written in `type`; a tensor whose row length is not a multiple of the type's block
// size falls back to q8_0 (or f16 when not a multiple of 32), and a note says so.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/dtype.h"
#include "format/gguf.h"
#include "util/thread_pool.h"

namespace wai::model {

struct SynthSpec {
  int64_t dim = 256;
  int64_t n_layers = 2;
  int64_t n_heads = 8;
  int64_t n_kv_heads = 8;
  int64_t ff = 768;
  int64_t n_vocab = 0;            // used only without a vocab file (then no tokenizer metadata)
  int64_t context_length = 4096;  // llama.context_length
  int64_t sliding_window = 0;     // > 0: written as llama.attention.sliding_window
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  DType type = DType::F32;
  uint64_t seed = 1;
  float output_scale = 3.0f;
  bool tie_output = false;        // omit output.weight (the head reuses token_embd)

  // Mistral-7B-v0.1's exact shapes (n_vocab comes from the vocab file: 32000).
  static SynthSpec mistral_7b();
};

// Builds the model. `vocab` (may be null) supplies every tokenizer.* key and n_vocab (its token list
// length). `notes` (may be null) receives one line per type fallback. Throws wai::Error for a bad spec.
// write_synthetic() generates tensor by tensor into a temporary file-backed mapping, so even a 7B
// model needs little anonymous memory.
void write_synthetic(const SynthSpec& spec, const gguf::File* vocab, const std::string& path, ThreadPool& pool,
                     std::vector<std::string>* notes = nullptr);
std::vector<uint8_t> synthetic_bytes(const SynthSpec& spec, const gguf::File* vocab, ThreadPool& pool,
                                     std::vector<std::string>* notes = nullptr);

}  // namespace wai::model
