// wai eval -m MODEL --ids "i1 i2 ..." [--sliding-window N] [--batch-size N] [-t THREADS]
// Teacher-forced run of the ids. Prints one line per position p (0-based):
//     p argmax_next_id logprob_of_ids[p+1]
// where argmax_next_id is the model's top-1 prediction after ids[0..p]; the last position has no
// actual next token and prints "nan" as its logprob. With --top K, each line continues with the K most
// likely next ids as "id:logprob" (diagnostics: how close a near-tie was).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/forward.h"
#include "model/kv/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace wai::cli {

namespace {
const char* kUsage =
    "usage: wai eval -m MODEL.gguf --ids \"i1 i2 ...\" [--sliding-window N] [--batch-size N] [-t THREADS]\n"
    "         [--top K]\n"
    "Prints per position p: `p argmax_next_id logprob_of_next_id` (the last position's logprob is nan).\n"
    "--top K: append the K most likely next ids as id:logprob.\n"
    "--sliding-window N: 0 = full attention; default: the GGUF's llama.attention.sliding_window.\n";

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ' || s[i] == ',' || s[i] == '\t' || s[i] == '\n') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != ',' && s[j] != '\t' && s[j] != '\n') ++j;
    int32_t v = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + j, v);
    if (ec != std::errc() || p != s.data() + j) invalid("--ids: '" + s.substr(i, j - i) + "' is not a token id");
    ids.push_back(v);
    i = j;
  }
  return ids;
}
}  // namespace

int cmd_eval(int argc, char** argv) {
  Args a(argc, argv, {"--help", "-h"},
         {"--help", "-h", "-m", "--model", "--ids", "--sliding-window", "--batch-size", "-b", "-t", "--threads", "--top"});
  if (a.has("--help") || a.has("-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  auto path = a.get_any({"-m", "--model"});
  auto ids_arg = a.get("--ids");
  if (!path || !ids_arg || !a.positionals().empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::vector<int32_t> ids = parse_ids(*ids_arg);
  if (ids.empty()) invalid("--ids is empty");
  const int64_t batch_size = a.get_int({"--batch-size", "-b"}, 512);
  if (batch_size < 1) invalid("--batch-size must be >= 1");
  const int threads = static_cast<int>(a.get_int({"-t", "--threads"}, std::max(1u, std::thread::hardware_concurrency())));
  if (threads < 1 || threads > 1024) invalid("-t must be in [1, 1024]");

  const int64_t top = a.get_int({"--top"}, 0);
  if (top < 0) invalid("--top must be >= 0");
  model::LoadOptions lo;
  lo.sliding_window = a.get_int({"--sliding-window"}, -1);
  if (a.has("--sliding-window") && lo.sliding_window < 0) invalid("--sliding-window must be >= 0");
  auto m = model::Model::load(*path, lo);
  const int64_t n_vocab = m->config().n_vocab;
  ThreadPool pool(threads);
  model::Forward fwd(m, pool);
  fwd.set_max_chunk(batch_size);
  model::KvCache cache(m->config(), static_cast<int64_t>(ids.size()));
  model::KvCache* caches[] = {&cache};

  const int64_t n = static_cast<int64_t>(ids.size());
  std::vector<float> logits;
  model::Batch batch;
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t e = std::min(n, b + batch_size);
    batch.clear();
    for (int64_t p = b; p < e; ++p) batch.add(ids[p], static_cast<int32_t>(p), 0, true);
    logits.clear();
    fwd.run(batch, caches, logits);
    for (int64_t p = b; p < e; ++p) {
      const float* l = &logits[static_cast<size_t>((p - b) * n_vocab)];
      int64_t best = 0;
      for (int64_t t = 1; t < n_vocab; ++t)
        if (l[t] > l[best]) best = t;
      double sum = 0.0;
      for (int64_t t = 0; t < n_vocab; ++t) sum += std::exp(static_cast<double>(l[t]) - l[best]);
      const double log_z = l[best] + std::log(sum);  // logprob(t) = l[t] - log_z
      if (p + 1 < n)
        std::printf("%lld %lld %.6f", (long long)p, (long long)best, l[ids[p + 1]] - log_z);
      else
        std::printf("%lld %lld nan", (long long)p, (long long)best);
      if (top > 0) {
        std::vector<int32_t> order(static_cast<size_t>(n_vocab));
        for (int64_t t = 0; t < n_vocab; ++t) order[t] = static_cast<int32_t>(t);
        const int64_t k = std::min(top, n_vocab);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t x, int32_t y) { return l[x] > l[y]; });
        for (int64_t j = 0; j < k; ++j) std::printf(" %d:%.6f", order[j], l[order[j]] - log_z);
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace wai::cli
