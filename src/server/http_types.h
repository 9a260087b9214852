// HTTP request/response types shared by the server's routes, free of Boost.Beast so that only
// http_server.cpp pays for Beast's compile time.
//
// An Exchange is one request's reply channel. The route handler receives it on an I/O thread and may
// answer at once (respond) or later from any thread (the engine's loop thread streams tokens through
// write()). All methods are thread-safe. Exactly one of respond() / start_stream()...end() happens;
// later calls are ignored. When the peer disconnects or a write fails, closed() turns true and the
// on_close callback runs once (on an I/O thread), so the handler can cancel its work.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wai::server {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // raw request target, e.g. "/ai/run/%40cf%2Fx?y=1"
  std::string path;                            // percent-decoded path without the query
  std::map<std::string, std::string> query;    // decoded query parameters (last one wins)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote;                          // peer address, for logs

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Retry-After, ...)
};

class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void respond(HttpResponse r) = 0;
  // Begins a chunked response (text/event-stream for SSE); write() sends chunks; end() finishes it.
  virtual void start_stream(int status, std::string content_type,
                            std::vector<std::pair<std::string, std::string>> headers = {}) = 0;
  virtual void write(std::string chunk) = 0;
  virtual void end() = 0;
  virtual bool closed() const = 0;
  // Runs once when the peer goes away before the reply is complete (or at once if it already has).
  virtual void on_close(std::function<void()> cb) = 0;
};

using Handler = std::function<void(HttpRequest&, std::shared_ptr<Exchange>)>;

// Percent-decodes a URL component ("%40cf%2Fx" -> "@cf/x"); `plus_is_space` for query strings.
// Malformed escapes are kept verbatim.
std::string url_decode(const std::string& s, bool plus_is_space);
// Splits "path?query" into the decoded path and decoded query parameters.
void parse_target(const std::string& target, std::string& path, std::map<std::string, std::string>& query);

}  // namespace wai::server
