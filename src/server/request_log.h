// An Exchange decorator that records each request once it completes: one structured log line on
// stderr and the request metrics (route, status, duration). Status 499 = client closed the connection
// before the reply was complete.
//
//   wai: request method=POST route=ai_run path=/ai/run/@cf/x model=@cf/x status=200 prompt_tokens=12
//        completion_tokens=40 ttft_ms=3.1 total_ms=85.2 finish=stop cached_tokens=8 stream=1
//        session=chat-42 remote=127.0.0.1:5123
// session: the request's x-session-affinity header (Workers AI's prompt-caching hint; a balancer in
// front routes on it), printable ASCII only, at most 128 bytes.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "server/http_types.h"
#include "server/metrics.h"

namespace wai::server {

struct RequestInfo {
  std::string route = "unknown";
  std::string model;
  int prompt_tokens = -1;
  int cached_tokens = -1;
  int completion_tokens = -1;
  double ttft_s = -1;
  std::string finish;
  bool stream = false;
};

class LoggedExchange : public Exchange, public std::enable_shared_from_this<LoggedExchange> {
 public:
  LoggedExchange(std::shared_ptr<Exchange> inner, Metrics& metrics, bool log, const HttpRequest& req);
  void install();  // hooks the inner exchange's on_close (call once after construction)

  void respond(HttpResponse r) override;
  void start_stream(int status, std::string content_type, std::vector<std::pair<std::string, std::string>> headers) override;
  void write(std::string chunk) override { inner_->write(std::move(chunk)); }
  void end() override;
  bool closed() const override { return inner_->closed(); }
  void on_close(std::function<void()> cb) override;

  // While held (a generation job is running), a peer disconnect does not log at once: release() logs
  // it with the job's final token counts.
  void hold() { std::lock_guard lk(mu_); held_ = true; }
  void release();

  template <class F>
  void note(F&& f) {
    std::lock_guard lk(mu_);
    f(info_);
  }

 private:
  void finish(int status);

  std::shared_ptr<Exchange> inner_;
  Metrics& metrics_;
  bool log_;
  std::string method_, path_, remote_, session_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  RequestInfo info_;
  int status_ = 0;
  bool finished_ = false;
  std::function<void()> user_close_;
  bool closed_fired_ = false;
  bool held_ = false;
};

}  // namespace wai::server
