#include "server/catalog.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace wai::server {

namespace fs = std::filesystem;
using nlohmann::json;

ModelHost::ModelHost(CatalogEntry entry, runtime::EngineOptions opts, std::string catalog_path)
    : entry_(std::move(entry)), opts_(opts), catalog_path_(std::move(catalog_path)) {
  if (entry_.context_length > 0) opts_.context_length = entry_.context_length;
}

ModelHost::~ModelHost() {
  if (loader_.joinable()) loader_.join();
}

bool ModelHost::file_exists() const {
  std::error_code ec;
  return fs::is_regular_file(entry_.file, ec);
}

bool ModelHost::loading() const {
  std::lock_guard lk(mu_);
  return loading_;
}

std::shared_ptr<LoadedModel> ModelHost::loaded() const {
  std::lock_guard lk(mu_);
  return loaded_;
}

std::shared_ptr<LoadedModel> ModelHost::do_load() {
  model::LoadOptions lo;
  lo.sliding_window = entry_.sliding_window;
  auto m = model::Model::load(entry_.file, lo);
  auto tok = std::make_shared<const text::Tokenizer>(text::Tokenizer::from_gguf(m->file()));
  auto lm = std::make_shared<LoadedModel>();
  if (!entry_.chat_template.empty()) {
    auto t = text::chat_template_from_name(entry_.chat_template);
    if (!t) fail(ErrorKind::kInvalidInput, "catalog: model '" + entry_.name + "': unknown chat_template '" + entry_.chat_template + "'");
    lm->chat_template = *t;
  } else {
    lm->chat_template = text::detect_chat_template(m->file());
  }
  lm->engine = std::make_shared<runtime::Engine>(m, tok, opts_);
  std::fprintf(stderr, "wai serve: model %s: %s\n", entry_.name.c_str(), describe_kv(lm->engine->stats()).c_str());
  return lm;
}

std::string describe_kv(const runtime::EngineStats& s) {
  const int64_t blocks = s.kv_block_bytes > 0 ? s.kv_bytes_total / s.kv_block_bytes : 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "KV cache %.1f MiB (%lld blocks of %lld positions, %lld positions), prefix cache %s",
                static_cast<double>(s.kv_bytes_total) / (1 << 20), static_cast<long long>(blocks),
                static_cast<long long>(s.kv_block_size), static_cast<long long>(blocks * s.kv_block_size),
                s.prefix_cache ? "on" : "off");
  return buf;
}

void ModelHost::load_now() {
  {
    std::lock_guard lk(mu_);
    if (loaded_) return;
    loading_ = true;
  }
  std::shared_ptr<LoadedModel> lm;
  std::string err;
  try {
    lm = do_load();
  } catch (const std::exception& e) {
    err = e.what();
  }
  std::vector<Ready> waiters;
  {
    std::lock_guard lk(mu_);
    loading_ = false;
    loaded_ = lm;
    waiters.swap(waiters_);
  }
  for (auto& w : waiters) w(lm, err);
  if (!err.empty()) fail(ErrorKind::kInvalidInput, "cannot load model '" + entry_.name + "' from '" + entry_.file + "': " + err);
}

void ModelHost::acquire(Ready done) {
  std::unique_lock lk(mu_);
  if (loaded_) {
    auto lm = loaded_;
    lk.unlock();
    done(lm, "");
    return;
  }
  waiters_.push_back(std::move(done));
  if (loading_) return;
  loading_ = true;
  if (loader_.joinable()) loader_.join();  // a previous (failed) load has finished
  loader_ = std::thread([this] {
    try {
      load_now();
    } catch (const std::exception&) {
      // reported to the waiters; a later request retries
    }
  });
}

void ModelHost::shutdown(std::chrono::milliseconds grace) {
  if (loader_.joinable()) loader_.join();
  auto lm = loaded();
  if (lm) lm->engine->shutdown(grace);
}

void ModelHost::unload() {
  shutdown(std::chrono::milliseconds(0));
  std::shared_ptr<LoadedModel> lm;
  {
    std::lock_guard lk(mu_);
    lm.swap(loaded_);
  }
  lm.reset();  // the last reference: GenJobs hold none (see generate.h)
}

std::vector<CatalogEntry> Catalog::parse(const std::string& text, const std::string& dir, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  auto bad = [&](const std::string& m) { fail(ErrorKind::kInvalidInput, "catalog " + source + ": " + m); };
  if (j.is_discarded()) bad("not valid JSON");
  if (!j.is_object() || !j.contains("models") || !j["models"].is_array()) bad("expected {\"models\": [...]}");
  std::vector<CatalogEntry> out;
  std::set<std::string> names;
  for (size_t i = 0; i < j["models"].size(); ++i) {
    const json& m = j["models"][i];
    std::string where = "models[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(where + " is not an object");
    auto str = [&](const char* k, bool required) -> std::string {
      if (!m.contains(k) || m[k].is_null()) {
        if (required) bad(where + " lacks \"" + k + "\"");
        return "";
      }
      if (!m[k].is_string()) bad(where + "." + k + " must be a string");
      return m[k].get<std::string>();
    };
    auto num = [&](const char* k, int64_t def) -> int64_t {
      if (!m.contains(k) || m[k].is_null()) return def;
      if (!m[k].is_number_integer()) bad(where + "." + k + " must be an integer");
      return m[k].get<int64_t>();
    };
    CatalogEntry e;
    e.name = str("name", true);
    e.file_written = str("file", true);
    fs::path p(e.file_written);
    e.file = p.is_absolute() ? p.string() : (fs::path(dir) / p).lexically_normal().string();
    if (auto t = str("task", false); !t.empty()) e.task = t;
    e.author = str("author", false);
    e.description = str("description", false);
    e.chat_template = str("chat_template", false);
    if (!e.chat_template.empty() && !text::chat_template_from_name(e.chat_template))
      bad(where + ".chat_template '" + e.chat_template + "' is not one of mistral-v0.1, llama2, plain");
    e.sliding_window = num("sliding_window", -1);
    e.context_length = num("context_length", 0);
    if (e.context_length < 0) bad(where + ".context_length must be >= 0");
    if (m.contains("aliases")) {
      if (!m["aliases"].is_array()) bad(where + ".aliases must be an array of strings");
      for (const auto& a : m["aliases"]) {
        if (!a.is_string()) bad(where + ".aliases must be an array of strings");
        e.aliases.push_back(a.get<std::string>());
      }
    }
    for (const auto& n : [&] { auto v = e.aliases; v.push_back(e.name); return v; }())
      if (!names.insert(n).second) bad("the name '" + n + "' appears twice");
    out.push_back(std::move(e));
  }
  return out;
}

std::unique_ptr<Catalog> Catalog::from_entries(std::vector<CatalogEntry> entries, const runtime::EngineOptions& opts,
                                               const std::string& source) {
  auto c = std::make_unique<Catalog>();
  c->source_ = source;
  for (auto& e : entries) c->models_.push_back(std::make_unique<ModelHost>(std::move(e), opts, source));
  return c;
}

std::unique_ptr<Catalog> Catalog::from_file(const std::string& path, const runtime::EngineOptions& opts) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kNotFound, "cannot read catalog '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return from_entries(parse(ss.str(), dir, path), opts, path);
}

std::unique_ptr<Catalog> Catalog::single(const std::string& model_path, const runtime::EngineOptions& opts,
                                         int64_t sliding_window, const std::string& chat_template) {
  if (!chat_template.empty() && !text::chat_template_from_name(chat_template))
    fail(ErrorKind::kInvalidInput, "unknown chat template '" + chat_template + "' (mistral-v0.1, llama2, plain)");
  CatalogEntry e;
  e.name = fs::path(model_path).stem().string();
  e.file = model_path;
  e.file_written = model_path;
  if (model_path != e.name) e.aliases.push_back(model_path);
  std::string fname = fs::path(model_path).filename().string();
  if (fname != e.name && fname != model_path) e.aliases.push_back(fname);
  e.sliding_window = sliding_window;
  e.chat_template = chat_template;
  e.description = "served from " + model_path;
  std::vector<CatalogEntry> v;
  v.push_back(std::move(e));
  return from_entries(std::move(v), opts, "-m " + model_path);
}

ModelHost* Catalog::find(const std::string& name) const {
  for (const auto& m : models_) {
    if (m->entry().name == name) return m.get();
    for (const auto& a : m->entry().aliases)
      if (a == name) return m.get();
  }
  return nullptr;
}

}  // namespace wai::server
