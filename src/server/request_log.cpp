#include "server/request_log.h"

#include <cstdio>
#include <string_view>

namespace wai::server {

namespace {
// A header value fit for one log field: printable ASCII without spaces, at most 128 bytes.
std::string log_field(std::string_view v) {
  std::string out;
  for (char c : v.substr(0, 128)) out += (c > 32 && c < 127) ? c : '_';
  return out;
}
}  // namespace

LoggedExchange::LoggedExchange(std::shared_ptr<Exchange> inner, Metrics& metrics, bool log, const HttpRequest& req)
    : inner_(std::move(inner)), metrics_(metrics), log_(log), method_(req.method), path_(req.path), remote_(req.remote),
      session_(log_field(req.header("x-session-affinity"))), start_(std::chrono::steady_clock::now()) {}

void LoggedExchange::install() {
  std::weak_ptr<LoggedExchange> weak = shared_from_this();
  inner_->on_close([weak] {
    auto self = weak.lock();
    if (!self) return;
    std::function<void()> cb;
    {
      std::lock_guard lk(self->mu_);
      self->closed_fired_ = true;
      cb = std::move(self->user_close_);
    }
    if (cb) cb();
    bool held;
    {
      std::lock_guard lk(self->mu_);
      held = self->held_;
    }
    if (!held) self->finish(499);
  });
}

void LoggedExchange::release() {
  bool closed;
  {
    std::lock_guard lk(mu_);
    held_ = false;
    closed = closed_fired_;
  }
  if (closed) finish(499);
}

void LoggedExchange::on_close(std::function<void()> cb) {
  {
    std::lock_guard lk(mu_);
    if (!closed_fired_) {
      user_close_ = std::move(cb);
      return;
    }
  }
  if (cb) cb();
}

void LoggedExchange::respond(HttpResponse r) {
  int status = r.status;
  inner_->respond(std::move(r));
  finish(status);
}

void LoggedExchange::start_stream(int status, std::string content_type,
                                  std::vector<std::pair<std::string, std::string>> headers) {
  {
    std::lock_guard lk(mu_);
    status_ = status;
    info_.stream = true;
  }
  inner_->start_stream(status, std::move(content_type), std::move(headers));
}

void LoggedExchange::end() {
  inner_->end();
  int status;
  {
    std::lock_guard lk(mu_);
    status = status_;
  }
  finish(status);
}

void LoggedExchange::finish(int status) {
  RequestInfo info;
  {
    std::lock_guard lk(mu_);
    if (finished_) return;
    finished_ = true;
    info = info_;
  }
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  metrics_.count_request(info.route, status, total);
  if (!log_) return;
  std::string line = "wai: request method=" + method_ + " route=" + info.route + " path=" + path_;
  if (!info.model.empty()) line += " model=" + info.model;
  line += " status=" + std::to_string(status);
  if (info.prompt_tokens >= 0) line += " prompt_tokens=" + std::to_string(info.prompt_tokens);
  if (info.completion_tokens >= 0) line += " completion_tokens=" + std::to_string(info.completion_tokens);
  char buf[64];
  if (info.ttft_s >= 0) {
    std::snprintf(buf, sizeof buf, " ttft_ms=%.1f", info.ttft_s * 1e3);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, " total_ms=%.1f", total * 1e3);
  line += buf;
  if (!info.finish.empty()) line += " finish=" + info.finish;
  if (info.cached_tokens >= 0) line += " cached_tokens=" + std::to_string(info.cached_tokens);
  if (info.stream) line += " stream=1";
  if (!session_.empty()) line += " session=" + session_;
  line += " remote=" + remote_ + "\n";
  std::fputs(line.c_str(), stderr);
}

}  // namespace wai::server
