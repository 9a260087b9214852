// One generation request from an HTTP route to runtime::Engine and back, in one of three wire formats.
//
// Flow: tokenize (chat template unless raw) -> context check (413/5021) -> Engine::submit (429/3040 when
// the queue is full, 413/5021 when the prompt alone needs more KV blocks than the pool has) -> tokens
// arrive on the engine's loop thread -> SSE events or one JSON reply. A chat answer that finished
// cleanly is remembered with its ids (text/answer_memo.h) so the next turn's prompt hits the cache.
// The peer closing the connection, or the request deadline passing, cancels the engine request.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "server/catalog.h"
#include "server/params.h"
#include "server/request_log.h"
#include "server/sse.h"

namespace wai::server {

class Api;

enum class WireFormat { kWorkersAi, kOpenAiChat, kOpenAiCompletion };

class GenJob : public std::enable_shared_from_this<GenJob> {
 public:
  GenJob(Api& api, std::shared_ptr<LoggedExchange> ex, std::string model_name, GenInput in, WireFormat fmt);

  // Runs on an I/O or loader thread once the model is ready; answers errors itself.
  void start(std::shared_ptr<LoadedModel> model);
  // Watchdog: cancel when the deadline has passed.
  void check_deadline(std::chrono::steady_clock::time_point now);
  // Answers an error in this job's wire format (v4 envelope or OpenAI error shape).
  void fail(int status, int code, const std::string& msg, int retry_after = 0);

 private:
  bool on_token(const runtime::TokenEvent& ev);
  void on_done(const runtime::Completion& c);
  void cancel();
  std::string chunk_json(const std::string& text, const runtime::TokenEvent* ev, const char* finish);
  nlohmann::json logprob_entry(const runtime::TokenEvent& ev) const;
  nlohmann::json usage_json(const runtime::Completion& c) const;
  void remember_answer(const runtime::Completion& c);
  bool openai() const { return fmt_ != WireFormat::kWorkersAi; }

  Api& api_;
  std::shared_ptr<LoggedExchange> ex_;
  std::string model_name_;
  GenInput in_;
  WireFormat fmt_;
  // Not the LoadedModel: jobs live in the engine's callbacks, and holding the engine from there could
  // make its loop thread destroy its own engine.
  const text::Tokenizer* tok_ = nullptr;
  std::shared_ptr<text::AnswerMemo> answers_;  // null: not a chat (raw text continues, no turns)
  std::string id_;
  int64_t created_ = 0;
  SsePadding padding_;
  std::chrono::steady_clock::time_point start_, deadline_, last_token_;
  bool got_token_ = false;

  std::mutex mu_;
  std::shared_ptr<runtime::RequestHandle> handle_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> timed_out_{false};
  std::string text_;                       // the text delivered so far (streamed or not)
  std::vector<nlohmann::json> logprobs_;   // non-streamed, when requested
  std::vector<int32_t> token_ids_;         // every generated id, in order (for the answer memo)
};

}  // namespace wai::server
