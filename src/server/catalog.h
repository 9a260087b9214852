// The model catalog: catalog names -> GGUF files and per-model settings, each with a lazily created
// runtime::Engine.
//
// config/catalog.json:
//   {"models": [{"name": "@cf/wai/stories260k",          // catalog name (required, unique)
//                "file": "../../shared/models/stories260K.gguf",  // relative to the catalog's folder
//                "aliases": ["stories260k"],             // other names it answers to
//                "task": "text-generation", "author": "...", "description": "...",
//                "chat_template": "plain",               // mistral-v0.1 | llama2 | plain; default: from GGUF
//                "sliding_window": 4096,                 // -1/absent: from GGUF; 0: full attention
//                "context_length": 4096}]}               // per-sequence limit; absent: model's
// An entry whose file is missing is listed with available=false and answers 503/5007 naming the file.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine.h"
#include "text/answer_memo.h"
#include "text/chat_template.h"

namespace wai::server {

struct CatalogEntry {
  std::string name;
  std::vector<std::string> aliases;
  std::string file;          // resolved path
  std::string file_written;  // as written in the catalog (for messages)
  std::string task = "text-generation";
  std::string author;
  std::string description;
  std::string chat_template;   // "" = detect from the GGUF
  int64_t sliding_window = -1;
  int64_t context_length = 0;
};

// A loaded model: what a request needs.
struct LoadedModel {
  std::shared_ptr<runtime::Engine> engine;
  text::ChatTemplate chat_template = text::ChatTemplate::kMistralV01;
  // The ids of answers this model generated (see answer_memo.h), used by the chat template with the
  // prefix cache on or off alike, so that both render the same prompts.
  std::shared_ptr<text::AnswerMemo> answers = std::make_shared<text::AnswerMemo>();
};

// One line on the KV pool a loaded model got: "KV cache 512.0 MiB (4096 blocks of 16 positions, 65536
// positions), prefix cache on".
std::string describe_kv(const runtime::EngineStats& s);

class ModelHost {
 public:
  ModelHost(CatalogEntry entry, runtime::EngineOptions opts, std::string catalog_path);
  ~ModelHost();
  ModelHost(const ModelHost&) = delete;
  ModelHost& operator=(const ModelHost&) = delete;

  const CatalogEntry& entry() const { return entry_; }
  bool file_exists() const;
  bool loading() const;
  std::shared_ptr<LoadedModel> loaded() const;  // null until ready

  // Calls `done(model, error)` once the model is ready (model set) or failed (error set): at once when
  // ready, else from the loader thread. Starts loading when needed.
  using Ready = std::function<void(std::shared_ptr<LoadedModel>, std::string error)>;
  void acquire(Ready done);
  // Loads on the calling thread (for --preload); throws wai::Error on failure.
  void load_now();
  void shutdown(std::chrono::milliseconds grace);
  // Shuts the engine down and destroys it (joins its loop thread): no callback runs afterwards.
  void unload();

 private:
  std::shared_ptr<LoadedModel> do_load();

  CatalogEntry entry_;
  runtime::EngineOptions opts_;
  std::string catalog_path_;
  mutable std::mutex mu_;
  std::shared_ptr<LoadedModel> loaded_;
  bool loading_ = false;
  std::vector<Ready> waiters_;
  std::thread loader_;
};

class Catalog {
 public:
  // Reads a catalog file; throws wai::Error naming the file and the problem.
  static std::unique_ptr<Catalog> from_file(const std::string& path, const runtime::EngineOptions& opts);
  // One model file served without a catalog: named after its stem, also answering to the path as given.
  static std::unique_ptr<Catalog> single(const std::string& model_path, const runtime::EngineOptions& opts,
                                         int64_t sliding_window, const std::string& chat_template);
  static std::unique_ptr<Catalog> from_entries(std::vector<CatalogEntry> entries, const runtime::EngineOptions& opts,
                                               const std::string& source);
  // Parses catalog JSON text; `dir` resolves relative file paths.
  static std::vector<CatalogEntry> parse(const std::string& json_text, const std::string& dir, const std::string& source);

  ModelHost* find(const std::string& name) const;  // by name or alias; null when unknown
  const std::vector<std::unique_ptr<ModelHost>>& models() const { return models_; }
  const std::string& source() const { return source_; }

 private:
  std::vector<std::unique_ptr<ModelHost>> models_;
  std::string source_;
};

}  // namespace wai::server
