// Asynchronous HTTP/1.1 server (Boost.Beast): keep-alive, request body limit, header and idle
// timeouts, chunked streaming replies, and disconnect detection while a reply is pending.
//
// Threads: `io_threads` threads run the I/O; each connection is a coroutine on its own strand. The
// handler runs on an I/O thread and must not block (generation runs on the engine's loop thread and
// answers through the Exchange).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "server/http_types.h"

namespace wai::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (see HttpServer::port())
  int io_threads = 2;
  size_t max_body_bytes = 4 << 20;
  size_t max_header_bytes = 64 << 10;
  std::chrono::milliseconds header_timeout{10000};  // to receive the headers once a request started
  std::chrono::milliseconds body_timeout{30000};    // to receive the body
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive connection with no request
  std::chrono::milliseconds write_timeout{30000};   // for one write to the client
};

class HttpServer {
 public:
  // Binds and listens at once (throws wai::Error on failure); serving starts with run().
  HttpServer(HttpServerOptions opts, Handler handler);
  ~HttpServer();

  uint16_t port() const;  // the bound port
  // Runs the I/O threads; returns after stop() once they are done. `on_signal` (if set) is called from
  // an I/O thread on SIGINT/SIGTERM.
  void run(std::function<void()> on_signal);
  void stop_accepting();  // closes the listener; open connections finish their current request
  void stop();            // stops the I/O threads (connections are dropped)
  int open_connections() const;
  int busy_requests() const;  // requests read whose reply is not yet complete

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wai::server
