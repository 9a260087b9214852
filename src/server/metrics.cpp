#include "server/metrics.h"

#include <cstdio>

#include "kernels/cpu.h"

namespace wai::server {

namespace {
const std::vector<double> kDurationBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
const std::vector<double> kTtftBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const std::vector<double> kTokenBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}
}  // namespace

std::string prom_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

void Metrics::Histogram::observe(const std::vector<double>& bounds, double v) {
  if (counts.empty()) counts.assign(bounds.size() + 1, 0);
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  counts[i]++;
  sum += v;
  n++;
}

void Metrics::count_request(const std::string& route, int status, double seconds) {
  std::lock_guard lk(mu_);
  requests_[{route, status}]++;
  durations_[route].observe(kDurationBounds, seconds);
}

void Metrics::add_tokens(const std::string& model, uint64_t prompt, uint64_t generated) {
  std::lock_guard lk(mu_);
  auto& t = tokens_[model];
  t.first += prompt;
  t.second += generated;
}

void Metrics::observe_ttft(const std::string& model, double s) {
  std::lock_guard lk(mu_);
  ttft_[model].observe(kTtftBounds, s);
}

void Metrics::observe_token_gap(const std::string& model, double s) {
  std::lock_guard lk(mu_);
  token_gap_[model].observe(kTokenBounds, s);
}

void Metrics::render_hist(std::string& out, const std::string& name, const std::string& label_name,
                          const std::map<std::string, Histogram>& hs, const std::vector<double>& bounds) {
  out += "# TYPE " + name + " histogram\n";
  for (const auto& [label, h] : hs) {
    std::string l = label_name + "=\"" + prom_escape(label) + "\"";
    uint64_t cum = 0;
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cum += h.counts.empty() ? 0 : h.counts[i];
      std::string le = i < bounds.size() ? num(bounds[i]) : "+Inf";
      out += name + "_bucket{" + l + ",le=\"" + le + "\"} " + std::to_string(cum) + "\n";
    }
    out += name + "_sum{" + l + "} " + num(h.sum) + "\n";
    out += name + "_count{" + l + "} " + std::to_string(h.n) + "\n";
  }
}

std::string Metrics::render(const std::vector<ModelGauges>& models, int open_connections) const {
  std::lock_guard lk(mu_);
  std::string o;
  o += "# HELP wai_requests_total HTTP requests by route and status.\n# TYPE wai_requests_total counter\n";
  for (const auto& [k, v] : requests_)
    o += "wai_requests_total{route=\"" + prom_escape(k.first) + "\",status=\"" + std::to_string(k.second) + "\"} " +
         std::to_string(v) + "\n";
  o += "# HELP wai_request_duration_seconds Time from request to the end of the response.\n";
  render_hist(o, "wai_request_duration_seconds", "route", durations_, kDurationBounds);
  o += "# HELP wai_prompt_tokens_total Prompt tokens processed.\n# TYPE wai_prompt_tokens_total counter\n";
  for (const auto& [m, t] : tokens_) o += "wai_prompt_tokens_total{model=\"" + prom_escape(m) + "\"} " + std::to_string(t.first) + "\n";
  o += "# HELP wai_generated_tokens_total Tokens generated.\n# TYPE wai_generated_tokens_total counter\n";
  for (const auto& [m, t] : tokens_) o += "wai_generated_tokens_total{model=\"" + prom_escape(m) + "\"} " + std::to_string(t.second) + "\n";
  o += "# HELP wai_time_to_first_token_seconds Time from submission to the first generated token.\n";
  render_hist(o, "wai_time_to_first_token_seconds", "model", ttft_, kTtftBounds);
  o += "# HELP wai_time_per_output_token_seconds Time between consecutive generated tokens of a request.\n";
  render_hist(o, "wai_time_per_output_token_seconds", "model", token_gap_, kTokenBounds);
  auto per_model = [&](const char* type, const char* name, const char* help, auto get) {
    o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& m : models) o += std::string(name) + "{model=\"" + prom_escape(m.model) + "\"} " + std::to_string(get(m)) + "\n";
  };
  auto gauge = [&](const char* name, const char* help, auto get) { per_model("gauge", name, help, get); };
  auto counter = [&](const char* name, const char* help, auto get) { per_model("counter", name, help, get); };
  gauge("wai_model_loaded", "1 when the model is loaded.", [](const ModelGauges& m) { return m.loaded ? 1 : 0; });
  gauge("wai_model_weights_repacked", "1 when the background repack of the weights for the fast kernels is done.",
        [](const ModelGauges& m) { return m.repacked ? 1 : 0; });
  gauge("wai_queue_depth", "Requests waiting for a slot.", [](const ModelGauges& m) { return m.queued; });
  gauge("wai_active_sequences", "Sequences being generated.", [](const ModelGauges& m) { return m.active; });
  gauge("wai_parallel_slots", "Sequences that can be generated together.", [](const ModelGauges& m) { return m.parallel; });
  gauge("wai_kv_cache_used_bytes", "KV cache bytes held by running sequences.", [](const ModelGauges& m) { return m.kv_used; });
  gauge("wai_kv_cache_cached_bytes", "KV cache bytes no sequence holds, kept for prefix reuse.",
        [](const ModelGauges& m) { return m.kv_cached; });
  gauge("wai_kv_cache_budget_bytes", "KV cache pool size (used + cached never exceed it).",
        [](const ModelGauges& m) { return m.kv_budget; });
  counter("wai_prefix_cache_prompt_tokens_total", "Prompt tokens of admitted requests.",
          [](const ModelGauges& m) { return m.prefix_prompt_tokens; });
  counter("wai_prefix_cache_hit_tokens_total", "Prompt tokens whose keys and values came from the prefix cache.",
          [](const ModelGauges& m) { return m.prefix_hit_tokens; });
  counter("wai_kv_cache_evictions_total", "Cached KV blocks evicted to make room.", [](const ModelGauges& m) { return m.kv_evictions; });
  counter("wai_kv_preemptions_total", "Running sequences preempted because the KV pool ran dry.",
          [](const ModelGauges& m) { return m.preemptions; });
  o += std::string("# HELP wai_cpu_kernels The kernel level in use (--cpu / WAI_CPU), as a label.\n# TYPE wai_cpu_kernels gauge\n") +
       "wai_cpu_kernels{isa=\"" + kernels::cpu_level_name(kernels::cpu_level()) + "\"} 1\n";
  o += "# HELP wai_open_connections Open HTTP connections.\n# TYPE wai_open_connections gauge\nwai_open_connections " +
       std::to_string(open_connections) + "\n";
  return o;
}

}  // namespace wai::server
