#include "server/api.h"

#include "server/errors.h"
#include "server/generate.h"
#include "server/params.h"
#include "server/request_log.h"
#include "util/error.h"

namespace wai::server {

using nlohmann::json;

Api::Api(std::unique_ptr<Catalog> catalog, Auth auth, ApiOptions opts)
    : catalog_(std::move(catalog)), auth_(std::move(auth)), opts_(opts) {
  watchdog_ = std::thread([this] { watchdog(); });
}

Api::~Api() {
  {
    std::lock_guard lk(jobs_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  watchdog_.join();
}

void Api::track(const std::shared_ptr<GenJob>& job) {
  std::lock_guard lk(jobs_mu_);
  jobs_[job.get()] = job;
}

void Api::untrack(const GenJob* job) {
  std::lock_guard lk(jobs_mu_);
  jobs_.erase(job);
}

int Api::jobs_in_flight() const {
  std::lock_guard lk(jobs_mu_);
  return static_cast<int>(jobs_.size());
}

// Cancels jobs past their deadline (a queued request never produces a token, so the engine callbacks
// alone cannot notice).
void Api::watchdog() {
  std::unique_lock lk(jobs_mu_);
  while (!stop_) {
    stop_cv_.wait_for(lk, std::chrono::milliseconds(100));
    std::vector<std::shared_ptr<GenJob>> live;
    for (auto& [k, w] : jobs_)
      if (auto j = w.lock()) live.push_back(std::move(j));
    lk.unlock();
    auto now = std::chrono::steady_clock::now();
    for (auto& j : live) j->check_deadline(now);
    live.clear();
    lk.lock();
  }
}

ModelHost& Api::find_model(const std::string& name) {
  ModelHost* h = catalog_->find(name);
  if (!h) throw ApiError(400, 5007, "No such model " + name + " or task");
  if (!h->loaded() && !h->file_exists())
    throw ApiError(503, 5007,
                   "Model " + h->entry().name + " is listed in the catalog but unavailable: its file '" +
                       h->entry().file + "' does not exist (set \"file\" in " + catalog_->source() + ")");
  return *h;
}

void Api::handle(HttpRequest& req, std::shared_ptr<Exchange> raw) {
  auto lex = std::make_shared<LoggedExchange>(std::move(raw), metrics_, opts_.log_requests, req);
  lex->install();
  std::shared_ptr<Exchange> ex = lex;
  bool openai = false;
  try {
    // Paths work both under /client/v4/accounts/{account_id} and bare; /v1/... is /ai/v1/....
    std::string path = req.path;
    static const std::string kPrefix = "/client/v4/accounts/";
    if (path.rfind(kPrefix, 0) == 0) {
      size_t slash = path.find('/', kPrefix.size());
      path = slash == std::string::npos ? "/" : path.substr(slash);
    }
    if (path.rfind("/v1/", 0) == 0 || path == "/v1") path = "/ai" + path;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    openai = path.rfind("/ai/v1/", 0) == 0;
    route(req, ex, path, openai);
  } catch (const ApiError& e) {
    lex->respond(error_response(e, openai));
  } catch (const wai::Error& e) {
    lex->respond(error_response(ApiError(400, 5006, std::string("AiError: Bad input: ") + e.what()), openai));
  } catch (const std::exception& e) {
    lex->respond(error_response(ApiError(500, 5000, std::string("Internal error: ") + e.what()), openai));
  }
}

void Api::route(HttpRequest& req, std::shared_ptr<Exchange>& ex, const std::string& path, bool& openai) {
  auto* lex = static_cast<LoggedExchange*>(ex.get());
  auto label = [&](const char* r) { lex->note([&](RequestInfo& i) { i.route = r; }); };
  auto need = [&](const char* method) {
    if (req.method != method)
      throw ApiError(405, 3042, "Method " + req.method + " is not allowed on " + req.path + " (use " + method + ")");
  };
  if (path == "/health") {
    label("health");
    return health(ex);
  }
  if (!auth_.check(req.header("authorization"))) {
    label("auth");
    throw ApiError(401, 10000, "Authentication error");
  }
  if (path == "/metrics") {
    label("metrics");
    need("GET");
    return metrics_route(ex);
  }
  static const std::string kRun = "/ai/run/";
  if (path.rfind(kRun, 0) == 0 && path.size() > kRun.size()) {
    label("ai_run");
    need("POST");
    return run_model(req, ex, path.substr(kRun.size()));
  }
  if (path == "/ai/v1/chat/completions") {
    label("openai_chat");
    need("POST");
    return openai_generate(req, ex, true);
  }
  if (path == "/ai/v1/completions") {
    label("openai_completions");
    need("POST");
    return openai_generate(req, ex, false);
  }
  if (path == "/ai/v1/models") {
    label("openai_models");
    need("GET");
    return openai_models(ex);
  }
  if (path == "/ai/models/search") {
    label("models_search");
    need("GET");
    return models_search(req, ex);
  }
  if (path == "/ai/models/schema") {
    label("models_schema");
    need("GET");
    return models_schema(req, ex);
  }
  label("not_found");
  throw ApiError(404, 3042, "No route for " + req.method + " " + req.path);
}

void Api::health(std::shared_ptr<Exchange>& ex) {
  bool loading = false;
  for (const auto& m : catalog_->models()) loading |= m->loading();
  HttpResponse r;
  if (draining_) {
    r.status = 503;
    r.body = R"({"status":"shutting down"})";
  } else if (loading) {
    r.status = 503;
    r.body = R"({"status":"loading"})";
  } else {
    r.body = R"({"status":"ok"})";
  }
  ex->respond(std::move(r));
}

void Api::metrics_route(std::shared_ptr<Exchange>& ex) {
  std::vector<ModelGauges> gauges;
  for (const auto& m : catalog_->models()) {
    ModelGauges g;
    g.model = m->entry().name;
    if (auto lm = m->loaded()) {
      auto s = lm->engine->stats();
      g.loaded = true;
      g.repacked = s.weights_repacked;
      g.queued = s.queued;
      g.active = s.active;
      g.parallel = s.parallel;
      g.kv_used = s.kv_bytes_used;
      g.kv_cached = s.kv_bytes_cached;
      g.kv_budget = s.kv_bytes_total;
      g.prefix_prompt_tokens = s.prefix_prompt_tokens;
      g.prefix_hit_tokens = s.prefix_hit_tokens;
      g.kv_evictions = s.kv_evictions;
      g.preemptions = s.preemptions;
    }
    gauges.push_back(g);
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.render(gauges, connections_ ? connections_() : 0);
  ex->respond(std::move(r));
}

namespace {
void start_job(Api& api, ModelHost& host, GenInput in, WireFormat fmt, std::shared_ptr<Exchange>& ex, bool draining) {
  if (draining) throw ApiError(503, 3040, "The server is shutting down");
  auto lex = std::static_pointer_cast<LoggedExchange>(ex);
  lex->note([&](RequestInfo& i) { i.model = host.entry().name; });
  auto job = std::make_shared<GenJob>(api, lex, host.entry().name, std::move(in), fmt);
  std::string name = host.entry().name, file = host.entry().file;
  host.acquire([job, name, file](std::shared_ptr<LoadedModel> m, std::string err) {
    if (!m) return job->fail(503, 5007, "Model " + name + " could not be loaded from '" + file + "': " + err);
    try {
      job->start(std::move(m));
    } catch (const std::exception& e) {
      job->fail(500, 5000, std::string("Internal error: ") + e.what());
    }
  });
}
}  // namespace

void Api::run_model(HttpRequest& req, std::shared_ptr<Exchange>& ex, const std::string& model) {
  ModelHost& host = find_model(model);
  GenInput in = parse_workers_ai(parse_body(req.body));
  start_job(*this, host, std::move(in), WireFormat::kWorkersAi, ex, draining_);
}

void Api::openai_generate(HttpRequest& req, std::shared_ptr<Exchange>& ex, bool chat) {
  json body = parse_body(req.body);
  GenInput in = chat ? parse_openai_chat(body) : parse_openai_completion(body);
  ModelHost& host = find_model(in.model);
  start_job(*this, host, std::move(in), chat ? WireFormat::kOpenAiChat : WireFormat::kOpenAiCompletion, ex, draining_);
}

}  // namespace wai::server
