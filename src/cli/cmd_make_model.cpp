// wai make-model OUT.gguf --vocab VOCAB.gguf (--shape mistral-7b | --dim D --layers L --heads H
//   --kv-heads K --ff F) [--type T] [--sliding-window W] [--seed S] [--ctx N] [--rope-theta X]
//   [--tie-output] [-t THREADS]
// Writes a random-weight Llama/Mistral GGUF (model/synthetic.h) with the VOCAB file's tokenizer.
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "model/synthetic.h"
#include "util/error.h"

namespace wai::cli {

namespace {
const char* kUsage =
    "usage: wai make-model OUT.gguf --vocab VOCAB.gguf (--shape mistral-7b | --dim D --layers L --heads H\n"
    "         --kv-heads K --ff F) [--type f32|f16|bf16|q8_0|q4_0|q4_K|q6_K] [--sliding-window W] [--seed S]\n"
    "         [--ctx N] [--rope-theta X] [--tie-output] [-t THREADS]\n"
    "Random weights, deterministic from the seed; tokenizer metadata (and the vocabulary size) from VOCAB.\n"
    "Tensors whose rows do not fit the type's blocks (q4_K/q6_K: 256) fall back to q8_0 or f16 (reported).\n";
}  // namespace

int cmd_make_model(int argc, char** argv) {
  Args a(argc, argv, {"--help", "-h", "--tie-output"},
         {"--help", "-h", "--vocab", "--shape", "--dim", "--layers", "--heads", "--kv-heads", "--ff", "--type",
          "--sliding-window", "--seed", "--ctx", "--rope-theta", "--tie-output", "-t", "--threads"});
  if (a.has("--help") || a.has("-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (a.positionals().size() != 1) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string out = a.positionals()[0];
  auto vocab_path = a.get("--vocab");
  if (!vocab_path) invalid("--vocab VOCAB.gguf is required (e.g. ../shared/testdata/tokenizer/mistral-v0.1-vocab.gguf)");

  model::SynthSpec spec;
  if (auto shape = a.get("--shape")) {
    if (*shape != "mistral-7b") invalid("unknown --shape '" + *shape + "' (known: mistral-7b)");
    spec = model::SynthSpec::mistral_7b();
  } else {
    for (const char* k : {"--dim", "--layers", "--heads", "--ff"})
      if (!a.has(k)) invalid(std::string(k) + " is required without --shape");
  }
  spec.dim = a.get_int({"--dim"}, spec.dim);
  spec.n_layers = a.get_int({"--layers"}, spec.n_layers);
  spec.n_heads = a.get_int({"--heads"}, spec.n_heads);
  spec.n_kv_heads = a.get_int({"--kv-heads"}, a.has("--shape") && !a.has("--heads") ? spec.n_kv_heads : spec.n_heads);
  spec.ff = a.get_int({"--ff"}, spec.ff);
  spec.sliding_window = a.get_int({"--sliding-window"}, spec.sliding_window);
  spec.context_length = a.get_int({"--ctx"}, spec.context_length);
  spec.rope_theta = static_cast<float>(a.get_float({"--rope-theta"}, spec.rope_theta));
  spec.seed = static_cast<uint64_t>(a.get_int({"--seed"}, 1));
  spec.tie_output = a.has("--tie-output");
  const std::string type_name = a.get_or("--type", "f32");
  auto type = dtype_from_name(type_name);
  if (!type || *type == DType::Q8_K || !dtype_info(*type).supported)
    invalid("unsupported --type '" + type_name + "' (f32 f16 bf16 q8_0 q4_0 q4_K q6_K)");
  spec.type = *type;

  const int threads = static_cast<int>(a.get_int({"-t", "--threads"}, std::max(1u, std::thread::hardware_concurrency())));
  if (threads < 1 || threads > 1024) invalid("-t must be in [1, 1024]");
  ThreadPool pool(threads);
  gguf::File vocab = gguf::File::open(*vocab_path);
  std::vector<std::string> notes;
  auto t0 = std::chrono::steady_clock::now();
  model::write_synthetic(spec, &vocab, out, pool, &notes);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& n : notes) std::fprintf(stderr, "make-model: note: %s\n", n.c_str());
  std::fprintf(stderr, "make-model: wrote %s (dim %lld, %lld layers, %lld/%lld heads, ff %lld, %s) in %.1f s\n",
               out.c_str(), (long long)spec.dim, (long long)spec.n_layers, (long long)spec.n_heads,
               (long long)spec.n_kv_heads, (long long)spec.ff, std::string(dtype_name(spec.type)).c_str(), secs);
  return 0;
}

}  // namespace wai::cli
