// The HTTP API: routing, auth, request logs and metrics around the Workers AI and OpenAI routes.
//
// Routes (every path also works under /client/v4/accounts/{account_id}; /v1/... = /ai/v1/...):
//   GET  /health                         200 {"status":"ok"} | 503 {"status":"loading"} (no auth)
//   GET  /metrics                        Prometheus text
//   POST /ai/run/{model}                 Workers AI text generation ({model} may contain '/', or %2F)
//   POST /ai/v1/chat/completions         OpenAI chat completions
//   POST /ai/v1/completions              OpenAI completions
//   GET  /ai/v1/models                   OpenAI model list
//   GET  /ai/models/search               Workers AI model search (search, task, author, page, per_page)
//   GET  /ai/models/schema?model=NAME    {input, output} JSON schemas
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "server/auth.h"
#include "server/catalog.h"
#include "server/http_types.h"
#include "server/metrics.h"

namespace wai::server {

struct ApiOptions {
  bool sse_padding = true;
  std::chrono::milliseconds request_timeout{600000};  // generation deadline (queue wait included)
  bool log_requests = true;
};

class GenJob;

class Api {
 public:
  Api(std::unique_ptr<Catalog> catalog, Auth auth, ApiOptions opts);
  ~Api();

  void handle(HttpRequest& req, std::shared_ptr<Exchange> ex);

  Catalog& catalog() { return *catalog_; }
  Metrics& metrics() { return metrics_; }
  const ApiOptions& options() const { return opts_; }
  void set_connections_probe(std::function<int()> f) { connections_ = std::move(f); }
  void set_draining() { draining_ = true; }
  int jobs_in_flight() const;

  // Generation jobs register for the timeout watchdog.
  void track(const std::shared_ptr<GenJob>& job);
  void untrack(const GenJob* job);

 private:
  void route(HttpRequest& req, std::shared_ptr<Exchange>& ex, const std::string& path, bool& openai);
  void health(std::shared_ptr<Exchange>& ex);
  void metrics_route(std::shared_ptr<Exchange>& ex);
  void run_model(HttpRequest& req, std::shared_ptr<Exchange>& ex, const std::string& model);
  void openai_generate(HttpRequest& req, std::shared_ptr<Exchange>& ex, bool chat);
  void openai_models(std::shared_ptr<Exchange>& ex);
  void models_search(HttpRequest& req, std::shared_ptr<Exchange>& ex);
  void models_schema(HttpRequest& req, std::shared_ptr<Exchange>& ex);
  ModelHost& find_model(const std::string& name);
  void watchdog();

  std::unique_ptr<Catalog> catalog_;
  Auth auth_;
  ApiOptions opts_;
  Metrics metrics_;
  std::function<int()> connections_;
  std::atomic<bool> draining_{false};

  mutable std::mutex jobs_mu_;
  std::map<const GenJob*, std::weak_ptr<GenJob>> jobs_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread watchdog_;
};

}  // namespace wai::server
