// `wai bench`: prefill and decode throughput of a model, the way llama-bench measures llama.cpp.
//
//   wai bench -m MODEL [-p 512] [-n 128] [-t THREADS] [--batch B] [--batch-size 512] [-r REPS]
//             [--json] [--sliding-window N] [--ctx-depth D] [--ctx-fill synthetic|prefill] [--seed S]
//
// One repetition, for each of the B sequences (each with its own KvCache and its own prompt):
//   depth:   the cache is brought to D positions (--ctx-depth; untimed, see fill_depth);
//   prefill: the p-token prompt, all B prompts in one Forward::run split into --batch-size chunks
//            (timed: prefill tokens/s = B * p / seconds);
//   decode:  n steps, each one Forward::run over B tokens (one per sequence) with the greedy argmax of
//            the previous step as the next input (timed: decode tokens/s = B * n / seconds).
// Prompts are random ids in [3, n_vocab) from xorshift64* seeded with (seed + sequence); the first
// decode input is id p of the same stream. bench/llama_bench.mjs draws the same ids for llama.cpp.
// One warm-up repetition (min(p, 64) prompt tokens, min(n, 4) decode steps) runs first and is not
// reported; the median, min, max and stddev over REPS repetitions are.
//
// Also reported: model load time (Model::load) and first-token time (load + one 1-token forward on a
// cold process: the page faults of the mapped weights), peak RSS (VmHWM: includes the mapped weights
// touched), KV cache bytes, and the weight bytes one decode step reads (for the roofline
// bandwidth / bytes-per-token in docs/BENCHMARKS.md).
#include <cstdlib>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/cpu.h"
#include "kernels/quant.h"
#include "model/forward.h"
#include "model/kv/kv_cache.h"
#include "model/model.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace wai::cli {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const char* kUsage =
    "usage: wai bench -m MODEL [-p 512] [-n 128] [-t THREADS] [--batch B] [--batch-size 512] [-r 5]\n"
    "                 [--json] [--sliding-window N] [--ctx-depth D] [--ctx-fill synthetic|prefill] [--seed 1234]\n"
    "                 [--no-mmap]   (copy the weights into huge-page memory instead of reading the mapping)\n"
    "                 [--no-repack] (keep q4_0 / q8_0 in GGUF's layout instead of the kernels' x16 layouts)\n"
    "  -p N              prompt tokens prefilled per sequence (0: no prefill)\n"
    "  -n N              tokens decoded one at a time per sequence after the prompt\n"
    "  -t THREADS        default: all hardware threads\n"
    "  --batch B         B sequences decoding together (aggregate tokens/s)\n"
    "  --batch-size N    prefill chunk (tokens per forward pass)\n"
    "  -r REPS           measured repetitions (plus one warm-up)\n"
    "  --ctx-depth D     positions already in each cache before the prompt (long-context decode)\n"
    "  --ctx-fill MODE   synthetic (default: random k/v, fast) or prefill (real tokens, slow)\n"
    "  --json            one JSON object on one line instead of the table\n";

// xorshift64*; the same stream as bench/llama_bench.mjs (randomIds), so both engines see the same ids.
std::vector<int32_t> random_ids(int64_t count, int64_t n_vocab, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (auto& id : ids) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    id = static_cast<int32_t>(3 + (s * 0x2545F4914F6CDD1Dull) % static_cast<uint64_t>(n_vocab - 3));
  }
  return ids;
}

// FNV-1a over the ids (one step per id): both bench/llama_bench.mjs and `wai bench` report it as
// "prompt_hash" for sequence 0's p + 1 ids, so a run can check that both engines got the same tokens.
std::string ids_hash(const std::vector<int32_t>& ids) {
  uint64_t h = 14695981039346656037ull;
  for (int32_t id : ids) h = (h ^ static_cast<uint32_t>(id)) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, h);
  return buf;
}

struct Stats {
  double median = 0, min = 0, max = 0, stddev = 0;
};
Stats stats(std::vector<double> xs) {
  Stats s;
  if (xs.empty()) return s;
  std::sort(xs.begin(), xs.end());
  const size_t n = xs.size();
  s.median = n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
  s.min = xs.front();
  s.max = xs.back();
  double mean = 0;
  for (double x : xs) mean += x / static_cast<double>(n);
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  s.stddev = n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0;
  return s;
}

// Peak resident set in bytes: VmHWM from /proc/self/status, else getrusage's ru_maxrss.
int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// Bytes of weights one decode step reads: every tensor, except that only one row of token_embd is
// read when the model has its own output.weight (with tied embeddings token_embd is the output matrix).
int64_t weight_bytes_per_token(const gguf::File& f) {
  const bool has_output = f.find_tensor("output.weight") != nullptr;
  int64_t total = 0;
  for (const auto& t : f.tensors()) {
    if (t.name == "token_embd.weight" && has_output)
      total += static_cast<int64_t>(t.nbytes) / std::max<int64_t>(1, t.rows());
    else
      total += static_cast<int64_t>(t.nbytes);
  }
  return total;
}

int64_t n_params(const gguf::File& f) {
  int64_t n = 0;
  for (const auto& t : f.tensors()) n += t.n_elements();
  return n;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else o += c;
  }
  return o;
}

std::string json_array(const std::vector<double>& xs) {
  std::string o = "[";
  for (size_t i = 0; i < xs.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.4f", i ? "," : "", xs[i]);
    o += buf;
  }
  return o + "]";
}

struct Options {
  std::string model;
  int64_t p = 512, n = 128, threads = 2, batch = 1, batch_size = 512, reps = 5, depth = 0, sliding_window = -1;
  uint64_t seed = 1234;
  bool json = false, fill_prefill = false, no_mmap = false, no_repack = false;
};

// The benchmark state: B sequences with their caches, prompts and current decode inputs.
class Bench {
 public:
  Bench(const Options& o, std::shared_ptr<const model::Model> m, ThreadPool& pool)
      : o_(o), model_(std::move(m)), fwd_(model_, pool) {
    const auto& c = model_->config();
    fwd_.set_max_chunk(o.batch_size);
    for (int64_t b = 0; b < o.batch; ++b) {
      caches_.push_back(std::make_unique<model::KvCache>(c, o.depth + o.p + o.n + 1));
      ids_.push_back(random_ids(o.p + 1, c.n_vocab, o.seed + static_cast<uint64_t>(b)));
      ptrs_.push_back(caches_.back().get());
    }
  }

  int64_t kv_bytes() const {
    int64_t total = 0;
    for (const auto& c : caches_) total += c->bytes();
    return total;
  }
  const model::KvCache& cache(int64_t b) const { return *caches_[static_cast<size_t>(b)]; }
  const std::vector<int32_t>& ids(int64_t b) const { return ids_[static_cast<size_t>(b)]; }

  // One forward pass of a single token on sequence 0 (then cleared): the first token; returns seconds.
  double first_token() {
    batch_.clear();
    batch_.add(ids_[0][0], 0, 0, true);
    auto t0 = Clock::now();
    fwd_.run(batch_, ptrs_, logits_);
    const double s = seconds_since(t0);
    caches_[0]->clear();
    return s;
  }

  // Fills positions [0, D) of every cache (untimed). synthetic: random k/v values at every position a
  // query at D can see, then n_past = D; attention's cost depends on how many positions are visible,
  // not on their values, and this takes a fraction of a second where a real 16k prefill of a 7B takes
  // minutes on 2 cores. prefill: the model itself prefills D random tokens (in --batch-size chunks),
  // once; later repetitions rewind n_past to D (the same blocks again without a window; with one,
  // whichever blocks come back, whose values again change no cost).
  void fill_depth(bool first_time) {
    for (auto& c : caches_) c->clear();
    if (o_.depth == 0) return;
    if (o_.fill_prefill && first_time) {
      batch_.clear();
      for (int64_t b = 0; b < o_.batch; ++b) {
        auto ids = random_ids(o_.depth, model_->config().n_vocab, o_.seed + 1000003 + static_cast<uint64_t>(b));
        for (int64_t i = 0; i < o_.depth; ++i) batch_.add(ids[i], static_cast<int32_t>(i), static_cast<int32_t>(b), false);
      }
      fwd_.run(batch_, ptrs_, logits_);
      return;
    }
    for (auto& c : caches_) {
      if (c->reserve(o_.depth) < o_.depth) throw Error(ErrorKind::kResource, "bench: no KV blocks for the context depth");
      if (o_.fill_prefill) {
        c->advance(o_.depth);
        continue;
      }
      uint64_t s = 0x243F6A8885A308D3ull;
      for (int64_t l = 0; l < c->n_layers(); ++l) {
        for (int64_t pos = c->lowest_visible(o_.depth); pos < o_.depth; ++pos) {
          for (int64_t h = 0; h < c->n_kv_heads(); ++h) {
            uint16_t* k = c->k(l, pos, h);  // (the cache holds IEEE halves)
            uint16_t* v = c->v(l, pos, h);
            for (int64_t d = 0; d < c->head_dim(); ++d) {
              s = s * 6364136223846793005ull + 1442695040888963407ull;
              k[d] = kernels::f32_to_f16(static_cast<float>(static_cast<int32_t>(s >> 32)) * (1.0f / 2147483648.0f));
              v[d] = kernels::f32_to_f16(static_cast<float>(static_cast<int32_t>(s >> 16 & 0xffffffff)) * (1.0f / 2147483648.0f));
            }
          }
        }
      }
      c->advance(o_.depth);
    }
  }

  // One repetition of a p_run-token prompt (p_run <= p) and n_decode steps; returns {prefill seconds,
  // decode seconds}.
  std::pair<double, double> rep(int64_t p_run, int64_t n_decode, bool first_time) {
    fill_depth(first_time);
    const int32_t d = static_cast<int32_t>(o_.depth);
    double prefill_s = 0;
    if (p_run > 0) {
      batch_.clear();
      for (int64_t b = 0; b < o_.batch; ++b)
        for (int64_t i = 0; i < p_run; ++i)
          batch_.add(ids_[b][i], d + static_cast<int32_t>(i), static_cast<int32_t>(b), i == p_run - 1);
      logits_.clear();
      auto t0 = Clock::now();
      fwd_.run(batch_, ptrs_, logits_);
      prefill_s = seconds_since(t0);
    }
    std::vector<int32_t> cur(static_cast<size_t>(o_.batch));
    for (int64_t b = 0; b < o_.batch; ++b) cur[b] = ids_[b][o_.p];  // the same first input for any p_run
    const int64_t n_vocab = model_->config().n_vocab;
    auto t0 = Clock::now();
    for (int64_t step = 0; step < n_decode; ++step) {
      batch_.clear();
      for (int64_t b = 0; b < o_.batch; ++b)
        batch_.add(cur[b], d + static_cast<int32_t>(p_run + step), static_cast<int32_t>(b), true);
      logits_.clear();
      fwd_.run(batch_, ptrs_, logits_);
      for (int64_t b = 0; b < o_.batch; ++b) {
        const float* row = logits_.data() + b * n_vocab;
        cur[b] = static_cast<int32_t>(std::max_element(row, row + n_vocab) - row);
      }
    }
    return {prefill_s, seconds_since(t0)};
  }

 private:
  const Options& o_;
  std::shared_ptr<const model::Model> model_;
  model::Forward fwd_;
  std::vector<std::unique_ptr<model::KvCache>> caches_;
  std::vector<model::KvCache*> ptrs_;
  std::vector<std::vector<int32_t>> ids_;  // per sequence: p prompt ids, then the first decode input
  model::Batch batch_;
  std::vector<float> logits_;
};

Options parse(int argc, char** argv) {
  Args a(argc, argv, {"--json", "--no-mmap", "--no-repack", "--help", "-h"},
         {"-m", "--model", "-p", "-n", "-t", "--threads", "--batch", "--batch-size", "-r", "--reps", "--json", "--no-mmap", "--no-repack",
          "--sliding-window", "--ctx-depth", "--ctx-fill", "--seed", "--help", "-h"});
  Options o;
  if (a.has("--help") || a.has("-h")) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  auto m = a.get_any({"-m", "--model"});
  if (!m) invalid(std::string("-m MODEL is required\n") + kUsage);
  o.model = *m;
  o.p = a.get_int({"-p"}, o.p);
  o.n = a.get_int({"-n"}, o.n);
  o.threads = a.get_int({"-t", "--threads"}, std::max(1u, std::thread::hardware_concurrency()));
  o.batch = a.get_int({"--batch"}, o.batch);
  o.batch_size = a.get_int({"--batch-size"}, o.batch_size);
  o.reps = a.get_int({"-r", "--reps"}, o.reps);
  o.depth = a.get_int({"--ctx-depth"}, o.depth);
  o.sliding_window = a.get_int({"--sliding-window"}, o.sliding_window);
  o.seed = static_cast<uint64_t>(a.get_int({"--seed"}, static_cast<int64_t>(o.seed)));
  o.json = a.has("--json");
  o.no_mmap = a.has("--no-mmap");
  o.no_repack = a.has("--no-repack");
  const std::string fill = a.get_or("--ctx-fill", "synthetic");
  if (fill != "synthetic" && fill != "prefill") invalid("--ctx-fill: expected synthetic or prefill, got '" + fill + "'");
  o.fill_prefill = fill == "prefill";
  if (o.p < 0 || o.n < 0 || o.depth < 0) invalid("-p, -n and --ctx-depth must be >= 0");
  if (o.p == 0 && o.n == 0) invalid("nothing to measure: -p and -n are both 0");
  if (o.threads < 1 || o.threads > 1024) invalid("-t: expected 1..1024 threads");
  if (o.batch < 1 || o.batch > 4096) invalid("--batch: expected 1..4096 sequences");
  if (o.batch_size < 1) invalid("--batch-size must be >= 1");
  if (o.reps < 1) invalid("-r must be >= 1");
  if (o.depth + o.p + o.n + 1 > INT32_MAX) invalid("--ctx-depth + -p + -n is too large");
  return o;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto t_start = Clock::now();
  model::LoadOptions lo;
  lo.sliding_window = o.sliding_window;
  lo.copy_weights = o.no_mmap;
  lo.repack = !o.no_repack;
  auto m = model::Model::load(o.model, lo);
  const double load_s = seconds_since(t_start);
  const auto& cfg = m->config();
  if (cfg.n_vocab <= 3) invalid("model vocabulary too small for random prompts (n_vocab " + std::to_string(cfg.n_vocab) + ")");

  ThreadPool pool(static_cast<int>(o.threads));
  Bench bench(o, m, pool);
  bench.first_token();
  const double first_token_s = seconds_since(t_start);  // load + pool/cache setup + the first forward pass
  // The q4_0 / q8_0 repack runs in the background from the load on (model/weight_repack.h): the first token
  // above is served while it runs, as a server's would be; the timed runs below measure the steady
  // state, after it.
  m->wait_for_repack();
  const double repack_s = m->repack() ? seconds_since(t_start) : 0.0;

  // Warm-up: touches every weight page, grows the scratch buffers, wakes the threads. A short prompt
  // is enough for that and keeps a 7B run from paying a second full prefill.
  bench.rep(std::min<int64_t>(o.p, 64), std::min<int64_t>(o.n, 4), true);
  std::vector<double> pre, dec;
  for (int64_t r = 0; r < o.reps; ++r) {
    auto [ps, ds] = bench.rep(o.p, o.n, false);
    if (o.p > 0) pre.push_back(static_cast<double>(o.batch * o.p) / ps);
    if (o.n > 0) dec.push_back(static_cast<double>(o.batch * o.n) / ds);
  }
  const Stats sp = stats(pre), sd = stats(dec);
  const std::string type(dtype_name(m->weight_type()));
  const int64_t size = static_cast<int64_t>(m->file().bytes().size());
  const int64_t kv = bench.kv_bytes(), rss = peak_rss_bytes(), wbytes = weight_bytes_per_token(m->file());

  if (o.json) {
    auto num = [](double x, bool present) {
      char buf[32];
      if (!present) return std::string("null");
      std::snprintf(buf, sizeof buf, "%.4f", x);
      return std::string(buf);
    };
    const bool hp = !pre.empty(), hd = !dec.empty();
    std::printf(
        "{\"engine\":\"wai\",\"model\":\"%s\",\"type\":\"%s\",\"size_bytes\":%" PRId64 ",\"n_params\":%" PRId64
        ",\"weight_bytes_per_token\":%" PRId64 ",\"cpu\":\"%s\",\"isa\":\"%s\",\"threads\":%" PRId64 ",\"batch\":%" PRId64
        ",\"batch_size\":%" PRId64 ",\"prompt_tokens\":%" PRId64 ",\"generated_tokens\":%" PRId64
        ",\"ctx_depth\":%" PRId64 ",\"ctx_fill\":\"%s\",\"sliding_window\":%" PRId64 ",\"kv_capacity\":%" PRId64
        ",\"kv_bytes\":%" PRId64 ",\"rss_peak_bytes\":%" PRId64 ",\"load_s\":%.4f,\"first_token_s\":%.4f,\"repack_s\":%s,\"repacked_bytes\":%" PRId64
        ",\"prompt_hash\":\"%s\",\"reps\":%" PRId64 ",\"prefill_tokens_per_s\":%s,\"prefill_min\":%s,\"prefill_max\":%s"
        ",\"prefill_stddev\":%s,\"decode_tokens_per_s\":%s,\"decode_min\":%s,\"decode_max\":%s"
        ",\"decode_stddev\":%s,\"prefill_samples\":%s,\"decode_samples\":%s}\n",
        json_escape(o.model).c_str(), type.c_str(), size, n_params(m->file()), wbytes,
        json_escape(kernels::cpu_description()).c_str(), kernels::cpu_level_name(kernels::cpu_level()), o.threads, o.batch, o.batch_size, o.p, o.n, o.depth,
        o.depth ? (o.fill_prefill ? "prefill" : "synthetic") : "none", cfg.sliding_window, bench.cache(0).held_blocks() * bench.cache(0).block_size(), kv,
        rss, load_s, first_token_s, num(repack_s, m->repack() != nullptr).c_str(),
        static_cast<int64_t>(m->repack() ? m->repack()->bytes() : 0), ids_hash(bench.ids(0)).c_str(), o.reps, num(sp.median, hp).c_str(), num(sp.min, hp).c_str(),
        num(sp.max, hp).c_str(), num(sp.stddev, hp).c_str(), num(sd.median, hd).c_str(), num(sd.min, hd).c_str(),
        num(sd.max, hd).c_str(), num(sd.stddev, hd).c_str(), json_array(pre).c_str(), json_array(dec).c_str());
    return 0;
  }

  // The llama-bench table: one row per test, t/s as median ± stddev (min..max alongside).
  std::string name = o.model.substr(o.model.find_last_of('/') + 1);
  if (name.size() > 32) name = name.substr(0, 29) + "...";
  std::printf("| %-32s | %-5s | %10s | %8s | %7s | %5s | %-16s | %-34s |\n", "model", "type", "size", "params",
              "threads", "batch", "test", "t/s (median ± stddev, min..max)");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(34, '-').c_str(), std::string(7, '-').c_str(),
              std::string(12, '-').c_str(), std::string(10, '-').c_str(), std::string(9, '-').c_str(),
              std::string(7, '-').c_str(), std::string(18, '-').c_str(), std::string(36, '-').c_str());
  char params[32];
  std::snprintf(params, sizeof params, "%.2f M", static_cast<double>(n_params(m->file())) / 1e6);
  const std::string at = o.depth ? " @ d" + std::to_string(o.depth) : "";
  auto row = [&](const std::string& test, const Stats& s) {
    char ts[64];
    std::snprintf(ts, sizeof ts, "%.2f ± %.2f (%.2f..%.2f)", s.median, s.stddev, s.min, s.max);
    std::printf("| %-32s | %-5s | %10s | %8s | %7" PRId64 " | %5" PRId64 " | %-16s | %-34s |\n", name.c_str(),
                type.c_str(), human_bytes(static_cast<double>(size)).c_str(), params, o.threads, o.batch,
                test.c_str(), ts);
  };
  if (!pre.empty()) row("pp" + std::to_string(o.p) + at, sp);
  if (!dec.empty()) row("tg" + std::to_string(o.n) + at, sd);
  if (m->repack())
    std::printf("\nq4_0 / q8_0 weights repacked to q4x16 / q8x16 in the background: %s ready %.3f s after start\n",
                human_bytes(static_cast<double>(m->repack()->bytes())).c_str(), repack_s);
  std::printf("\nload %.3f s, first token %.3f s, peak RSS %s, KV cache %s (%" PRId64 " x %" PRId64
              " positions, window %" PRId64 "), %" PRId64 " reps + 1 warm-up, weights read per decode step %s\n",
              load_s, first_token_s, human_bytes(static_cast<double>(rss)).c_str(),
              human_bytes(static_cast<double>(kv)).c_str(), o.batch, bench.cache(0).held_blocks() * bench.cache(0).block_size(), cfg.sliding_window,
              o.reps, human_bytes(static_cast<double>(wbytes)).c_str());
  return 0;
}

}  // namespace wai::cli
