// Prometheus metrics (text exposition format 0.0.4).
//
//   wai_requests_total{route,status}                     counter
//   wai_request_duration_seconds{route}                  histogram
//   wai_prompt_tokens_total{model}, wai_generated_tokens_total{model}   counters
//   wai_time_to_first_token_seconds{model}               histogram
//   wai_time_per_output_token_seconds{model}             histogram (gap between consecutive tokens)
//   wai_queue_depth{model}, wai_active_sequences{model}, wai_parallel_slots{model},
//   wai_model_loaded{model}, wai_model_weights_repacked{model}   gauges (repacked: the background
//     regrouping of q4_0 / q8_0 weights for the fast kernels is done; answers are the same before)
//   wai_kv_cache_used_bytes{model}     KV blocks held by running sequences     gauge
//   wai_kv_cache_cached_bytes{model}   blocks no sequence holds, kept for reuse gauge
//   wai_kv_cache_budget_bytes{model}   the pool (used + cached <= budget)     gauge
//   wai_prefix_cache_prompt_tokens_total{model}, wai_prefix_cache_hit_tokens_total{model}  counters
//     (prompt tokens of admitted requests; of those, the ones whose K/V came from the cache)
//   wai_kv_cache_evictions_total{model}, wai_kv_preemptions_total{model}  counters
//   wai_cpu_kernels{isa}                                 gauge (1; the --cpu / WAI_CPU level in use)
//   wai_open_connections                                 gauge
// Thread-safe; observations take one mutex (cheap next to a decode step).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace wai::server {

struct ModelGauges {
  std::string model;
  bool loaded = false;
  bool repacked = false;
  int queued = 0, active = 0, parallel = 0;
  int64_t kv_used = 0, kv_cached = 0, kv_budget = 0;
  uint64_t prefix_prompt_tokens = 0, prefix_hit_tokens = 0, kv_evictions = 0, preemptions = 0;
};

class Metrics {
 public:
  void count_request(const std::string& route, int status, double seconds);
  void add_tokens(const std::string& model, uint64_t prompt, uint64_t generated);
  void observe_ttft(const std::string& model, double seconds);
  void observe_token_gap(const std::string& model, double seconds);

  std::string render(const std::vector<ModelGauges>& models, int open_connections) const;

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket (non-cumulative), last = +Inf
    double sum = 0;
    uint64_t n = 0;
    void observe(const std::vector<double>& bounds, double v);
  };
  static void render_hist(std::string& out, const std::string& name, const std::string& label_name,
                          const std::map<std::string, Histogram>& hs, const std::vector<double>& bounds);

  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> durations_, ttft_, token_gap_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> tokens_;  // model -> (prompt, generated)
};

// Prometheus label value escaping (backslash, quote, newline).
std::string prom_escape(const std::string& s);

}  // namespace wai::server
