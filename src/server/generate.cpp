#include "server/generate.h"

#include <ctime>
#include <random>

#include "server/api.h"
#include "server/errors.h"
#include "util/error.h"

namespace wai::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += kHex[rng() % 16];
  return s;
}
}  // namespace

GenJob::GenJob(Api& api, std::shared_ptr<LoggedExchange> ex, std::string model_name, GenInput in, WireFormat fmt)
    : api_(api), ex_(std::move(ex)), model_name_(std::move(model_name)), in_(std::move(in)), fmt_(fmt),
      padding_(std::random_device{}()) {
  id_ = random_id(fmt == WireFormat::kOpenAiChat ? "chatcmpl-" : "cmpl-");
  created_ = static_cast<int64_t>(std::time(nullptr));
  start_ = Clock::now();
  deadline_ = start_ + api.options().request_timeout;
  ex_->hold();
}

void GenJob::fail(int status, int code, const std::string& msg, int retry_after) {
  ex_->respond(error_response(ApiError(status, code, msg, retry_after), openai()));
  ex_->release();
}

void GenJob::start(std::shared_ptr<LoadedModel> model) {
  runtime::Engine& eng = *model->engine;
  const text::Tokenizer& tok = eng.tokenizer();
  tok_ = &tok;
  std::vector<int32_t> prompt;
  try {
    if (in_.use_messages) {
      answers_ = model->answers;
      prompt = text::apply_chat_template(model->chat_template, tok, in_.messages, answers_.get());
    } else if (in_.raw) {
      prompt = tok.encode(in_.prompt, tok.add_bos());
    } else {
      answers_ = model->answers;
      text::ChatMessage m{"user", in_.prompt};
      prompt = text::apply_chat_template(model->chat_template, tok, std::span<const text::ChatMessage>(&m, 1));
    }
  } catch (const wai::Error& e) {
    return fail(400, 5006, std::string("AiError: Bad input: ") + e.what());
  }
  const int64_t ctx = eng.context_length();
  const int64_t n = static_cast<int64_t>(prompt.size());
  ex_->note([&](RequestInfo& i) { i.prompt_tokens = static_cast<int>(n); });
  if (n >= ctx)
    return fail(413, 5021,
                "Context window limit exceeded: the input is estimated at " + std::to_string(n) +
                    " tokens, but model " + model_name_ + " allows at most " + std::to_string(ctx - 1) +
                    " input tokens (context window " + std::to_string(ctx) + ")");

  runtime::GenerateRequest req;
  req.prompt = std::move(prompt);
  req.sampling = in_.sampling;
  req.max_tokens = static_cast<int32_t>(std::min<int64_t>(in_.max_tokens, ctx - n));
  req.stop = in_.stop;
  req.want_logprobs = in_.logprobs;
  req.continuation = !in_.use_messages && in_.raw;  // raw text continues the prompt (keeps its leading space)

  auto self = shared_from_this();
  runtime::Callbacks cb;
  cb.on_token = [self](const runtime::TokenEvent& ev) { return self->on_token(ev); };
  cb.on_done = [self](const runtime::Completion& c) { self->on_done(c); };
  std::weak_ptr<GenJob> weak = self;
  ex_->on_close([weak] {
    if (auto s = weak.lock()) s->cancel();
  });

  // Hold the lock across submit so that tokens arriving at once wait for the stream head below.
  std::unique_lock lk(mu_);
  try {
    handle_ = eng.submit(std::move(req), std::move(cb), in_.reject_if_busy);
  } catch (const runtime::QueueFull& e) {
    lk.unlock();
    return fail(429, 3040,
                std::string("Capacity temporarily exceeded, please try again later (") + e.what() + ")", 1);
  } catch (const runtime::KvBudgetExceeded& e) {
    lk.unlock();
    return fail(413, 5021, std::string("The input does not fit this server's KV cache: ") + e.what());
  } catch (const wai::Error& e) {
    lk.unlock();
    if (e.kind() == ErrorKind::kInvalidInput) return fail(413, 5021, std::string("Context window limit exceeded: ") + e.what());
    return fail(500, 5000, std::string("Internal error: ") + e.what());
  }
  api_.track(self);
  if (in_.stream) {
    ex_->start_stream(200, "text/event-stream", {});
    if (fmt_ == WireFormat::kOpenAiChat) {
      json delta = {{"role", "assistant"}, {"content", ""}};
      json c = {{"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_}, {"model", model_name_},
                {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", nullptr}}})}};
      if (in_.include_usage) c["usage"] = nullptr;
      ex_->write(sse_event(dump_json(c)));
    }
  }
  auto h = handle_;
  lk.unlock();
  if (cancelled_ || ex_->closed()) h->cancel();
}

void GenJob::cancel() {
  cancelled_ = true;
  std::shared_ptr<runtime::RequestHandle> h;
  {
    std::lock_guard lk(mu_);
    h = handle_;
  }
  if (h) h->cancel();
}

void GenJob::check_deadline(Clock::time_point now) {
  if (now < deadline_ || timed_out_.exchange(true)) return;
  cancel();
}

json GenJob::logprob_entry(const runtime::TokenEvent& ev) const {
  std::string t = tok_->token_bytes(ev.id);
  json bytes = json::array();
  for (unsigned char c : t) bytes.push_back(static_cast<int>(c));
  return {{"token", t}, {"logprob", ev.logprob}, {"bytes", bytes}, {"top_logprobs", json::array()}};
}

// usage as Workers AI and OpenAI send it; prompt_tokens_details.cached_tokens: prompt tokens whose keys
// and values came from the prefix cache.
json GenJob::usage_json(const runtime::Completion& c) const {
  return {{"prompt_tokens", c.prompt_tokens}, {"completion_tokens", c.completion_tokens},
          {"total_tokens", c.prompt_tokens + c.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", c.cached_tokens}}}};
}

// Remembers a chat answer's ids when they are exactly what the client got: the whole generation (no
// stop string cut it: then the ids would decode to more than the text), nothing cancelled or failed.
void GenJob::remember_answer(const runtime::Completion& c) {
  if (!answers_ || token_ids_.empty()) return;
  if (c.reason != runtime::FinishReason::kStop && c.reason != runtime::FinishReason::kLength) return;
  std::string text = text_ + c.tail_text;
  if (tok_->decode(token_ids_) != text) return;
  answers_->remember(std::move(text), token_ids_);
}

// One streamed event for `text` (and the token's logprob when requested), or the final chunk of an
// OpenAI stream when `finish` is set.
std::string GenJob::chunk_json(const std::string& text, const runtime::TokenEvent* ev, const char* finish) {
  if (fmt_ == WireFormat::kWorkersAi) {  // field order as Cloudflare sends it: response, then p
    std::string j = "{\"response\":" + dump_json(json(text));
    if (api_.options().sse_padding) j += ",\"p\":\"" + padding_.next() + "\"";
    return sse_event(j + "}");
  }
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
  if (fmt_ == WireFormat::kOpenAiChat) {
    choice["delta"] = finish ? json::object() : json{{"content", text}};
    if (ev && in_.logprobs) choice["logprobs"] = {{"content", json::array({logprob_entry(*ev)})}};
  } else {
    choice["text"] = text;
    if (ev && in_.logprobs) {
      json e = logprob_entry(*ev);
      choice["logprobs"] = {{"tokens", {e["token"]}}, {"token_logprobs", {ev->logprob}}, {"top_logprobs", nullptr},
                            {"text_offset", json::array()}};
    }
  }
  json c = {{"id", id_}, {"object", fmt_ == WireFormat::kOpenAiChat ? "chat.completion.chunk" : "text_completion"},
            {"created", created_}, {"model", model_name_}, {"choices", json::array({choice})}};
  if (in_.include_usage) c["usage"] = nullptr;
  return sse_event(dump_json(c));
}

bool GenJob::on_token(const runtime::TokenEvent& ev) {
  std::lock_guard lk(mu_);
  auto now = Clock::now();
  if (got_token_) api_.metrics().observe_token_gap(model_name_, std::chrono::duration<double>(now - last_token_).count());
  got_token_ = true;
  last_token_ = now;
  if (cancelled_ || ex_->closed()) return false;
  token_ids_.push_back(ev.id);
  text_ += ev.text;
  if (in_.stream) {
    if (!ev.text.empty() || (in_.logprobs && openai())) ex_->write(chunk_json(ev.text, &ev, nullptr));
  } else if (in_.logprobs) {
    logprobs_.push_back(logprob_entry(ev));
  }
  return true;
}

void GenJob::on_done(const runtime::Completion& c) {
  std::lock_guard lk(mu_);
  handle_.reset();  // the request holds our callbacks (and so this job): break the cycle
  api_.untrack(this);
  api_.metrics().add_tokens(model_name_, static_cast<uint64_t>(c.prompt_tokens), static_cast<uint64_t>(c.completion_tokens));
  if (c.completion_tokens > 0) api_.metrics().observe_ttft(model_name_, c.time_to_first_token_s);
  std::string finish = runtime::finish_reason_name(c.reason);
  if (timed_out_) finish = "timeout";
  remember_answer(c);
  ex_->note([&](RequestInfo& i) {
    i.prompt_tokens = c.prompt_tokens;
    i.cached_tokens = c.cached_tokens;
    i.completion_tokens = c.completion_tokens;
    if (c.completion_tokens > 0) i.ttft_s = c.time_to_first_token_s;
    i.finish = finish;
  });
  if (ex_->closed()) return ex_->release();  // the client is gone: log it, nothing to send
  const bool failed = c.reason == runtime::FinishReason::kError;
  const bool cancelled = c.reason == runtime::FinishReason::kCancelled;
  // OpenAI finish_reason: "stop" | "length" (a timeout or shutdown cuts the text short: "length").
  const char* oa_finish = c.reason == runtime::FinishReason::kStop ? "stop" : "length";

  if (!in_.stream) {
    if (failed) return fail(500, 5000, "Generation failed: " + c.error);
    if (cancelled && timed_out_)
      return fail(408, 3007, "Request timeout: generation did not finish within " +
                                 std::to_string(api_.options().request_timeout.count() / 1000.0) + " s");
    if (cancelled) return fail(503, 3040, "The server is shutting down; the request was cancelled");
    text_ += c.tail_text;
    json usage = usage_json(c);
    HttpResponse r;
    if (fmt_ == WireFormat::kWorkersAi) {
      r.body = dump_json(envelope_ok({{"response", text_}, {"usage", usage}}));
    } else if (fmt_ == WireFormat::kOpenAiChat) {
      json choice = {{"index", 0}, {"message", {{"role", "assistant"}, {"content", text_}}}, {"logprobs", nullptr},
                     {"finish_reason", oa_finish}};
      if (in_.logprobs) choice["logprobs"] = {{"content", logprobs_}};
      r.body = dump_json({{"id", id_}, {"object", "chat.completion"}, {"created", created_}, {"model", model_name_},
                          {"choices", json::array({choice})}, {"usage", usage}});
    } else {
      json choice = {{"index", 0}, {"text", text_}, {"logprobs", nullptr}, {"finish_reason", oa_finish}};
      if (in_.logprobs) {
        json toks = json::array(), lps = json::array();
        for (const auto& e : logprobs_) toks.push_back(e["token"]), lps.push_back(e["logprob"]);
        choice["logprobs"] = {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", nullptr}, {"text_offset", json::array()}};
      }
      r.body = dump_json({{"id", id_}, {"object", "text_completion"}, {"created", created_}, {"model", model_name_},
                          {"choices", json::array({choice})}, {"usage", usage}});
    }
    ex_->respond(std::move(r));
    ex_->release();
    return;
  }

  // Streamed: flush held-back text, then each format's end sequence and [DONE].
  if (!c.tail_text.empty()) ex_->write(chunk_json(c.tail_text, nullptr, nullptr));
  if (failed) {
    json e = {{"error", {{"message", "Generation failed: " + c.error}, {"code", 5000}}}};
    ex_->write(sse_event(dump_json(e)));
  }
  json usage = usage_json(c);
  if (fmt_ == WireFormat::kWorkersAi) {
    ex_->write(chunk_json("", nullptr, nullptr));
    ex_->write(sse_event("{\"response\":\"\",\"usage\":" + dump_json(usage) + "}"));
  } else {
    ex_->write(chunk_json("", nullptr, oa_finish));
    if (in_.include_usage) {
      json u = {{"id", id_}, {"object", fmt_ == WireFormat::kOpenAiChat ? "chat.completion.chunk" : "text_completion"},
                {"created", created_}, {"model", model_name_}, {"choices", json::array()}, {"usage", usage}};
      ex_->write(sse_event(dump_json(u)));
    }
  }
  ex_->write(kSseDone);
  ex_->end();
  ex_->release();
}

}  // namespace wai::server
