// Boost.Beast HTTP/1.1 server: one coroutine per connection on its own strand.
//
// Per request: wait (idle timeout) for the first byte, read the headers (header timeout), answer
// "Expect: 100-continue", read the body (body timeout, body limit), call the handler, then wait for the
// Exchange to produce the reply while a DisconnectWatcher detects the peer closing. Handler threads
// (e.g. the engine's loop) append to the Exchange under its mutex and wake the coroutine by posting a
// cancel of its timer onto the strand; because the coroutine starts its wait only right after a
// check of the Exchange state that wrote nothing (no co_await, so without leaving the strand), no
// wake-up is lost.
#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange without including it

#include "server/http_server.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "server/disconnect_watcher.h"
#include "server/errors.h"
#include "util/error.h"

namespace wai::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::redirect_error;
using asio::use_awaitable;

namespace {

// One request's reply, filled by the handler from any thread and drained by the connection coroutine.
class ExchangeImpl : public Exchange, public std::enable_shared_from_this<ExchangeImpl> {
 public:
  explicit ExchangeImpl(asio::any_io_executor ex) : ex_(ex), timer_(ex) {}

  void respond(HttpResponse r) override {
    {
      std::lock_guard lk(mu_);
      if (kind_ != Kind::kNone) return;
      kind_ = Kind::kFull;
      full_ = std::move(r);
    }
    notify();
  }
  void start_stream(int status, std::string content_type, std::vector<std::pair<std::string, std::string>> headers) override {
    {
      std::lock_guard lk(mu_);
      if (kind_ != Kind::kNone) return;
      kind_ = Kind::kStream;
      full_.status = status;
      full_.content_type = std::move(content_type);
      full_.headers = std::move(headers);
    }
    notify();
  }
  void write(std::string chunk) override {
    {
      std::lock_guard lk(mu_);
      if (kind_ != Kind::kStream || ended_) return;
      pending_ += chunk;
    }
    notify();
  }
  void end() override {
    {
      std::lock_guard lk(mu_);
      if (kind_ != Kind::kStream) return;
      ended_ = true;
    }
    notify();
  }
  bool closed() const override { return closed_.load(); }
  void on_close(std::function<void()> cb) override {
    {
      std::lock_guard lk(mu_);
      if (!closed_.load()) {
        on_close_ = std::move(cb);
        return;
      }
    }
    if (cb) cb();
  }

  // Peer gone (EOF, reset, write failure): fire on_close once and wake the coroutine.
  void mark_closed() {
    std::function<void()> cb;
    {
      std::lock_guard lk(mu_);
      if (closed_.exchange(true)) return;
      cb = std::move(on_close_);
    }
    if (cb) cb();
    notify();
  }

  enum class Kind { kNone, kFull, kStream };
  struct Snapshot {
    Kind kind = Kind::kNone;
    HttpResponse head;  // full response, or stream status/headers
    std::string chunk;  // stream bytes to send now
    bool ended = false;
  };
  Snapshot take() {
    std::lock_guard lk(mu_);
    Snapshot s;
    s.kind = kind_;
    s.ended = ended_;
    if (kind_ == Kind::kFull) s.head = std::move(full_);
    if (kind_ == Kind::kStream) {
      if (!head_taken_) s.head = full_;
      s.chunk.swap(pending_);
    }
    return s;
  }
  void mark_head_taken() { std::lock_guard lk(mu_); head_taken_ = true; }
  asio::steady_timer& timer() { return timer_; }

 private:
  void notify() {
    asio::post(ex_, [self = shared_from_this()] { self->timer_.cancel(); });
  }

  asio::any_io_executor ex_;
  asio::steady_timer timer_;
  std::mutex mu_;
  Kind kind_ = Kind::kNone;
  HttpResponse full_;
  std::string pending_;
  bool ended_ = false;
  bool head_taken_ = false;
  std::atomic<bool> closed_{false};
  std::function<void()> on_close_;
};

http::status to_status(int s) { return static_cast<http::status>(s); }

}  // namespace

std::string url_decode(const std::string& s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

void parse_target(const std::string& target, std::string& path, std::map<std::string, std::string>& query) {
  size_t q = target.find('?');
  path = url_decode(target.substr(0, q), false);
  query.clear();
  if (q == std::string::npos) return;
  std::string qs = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= qs.size()) {
    size_t amp = qs.find('&', pos);
    if (amp == std::string::npos) amp = qs.size();
    std::string kv = qs.substr(pos, amp - pos);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      std::string k = url_decode(kv.substr(0, eq), true);
      std::string v = eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1), true);
      query[k] = v;
    }
    pos = amp + 1;
  }
}

struct HttpServer::Impl {
  HttpServerOptions opts;
  Handler handler;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  asio::signal_set signals{ioc, SIGINT, SIGTERM};
  std::atomic<bool> stopping{false};
  std::atomic<int> connections{0};
  std::atomic<int> busy{0};
  std::function<void()> on_signal;

  awaitable<void> listen() {
    for (;;) {
      boost::system::error_code ec;
      asio::any_io_executor strand = asio::make_strand(ioc);
      tcp::socket sock = co_await acceptor.async_accept(strand, redirect_error(use_awaitable, ec));
      if (ec) {
        if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
        continue;  // e.g. EMFILE: keep serving the open connections
      }
      asio::co_spawn(sock.get_executor(), session(std::move(sock)), [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "wai serve: connection error: %s\n", ex.what());
        }
      });
    }
  }

  // Writes a complete response; returns false on failure.
  static awaitable<bool> write_full(beast::tcp_stream& stream, const HttpResponse& r, unsigned version, bool keep_alive,
                                    std::chrono::milliseconds timeout) {
    http::response<http::string_body> res{to_status(r.status), version};
    res.set(http::field::server, "wai");
    res.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.body() = r.body;
    res.prepare_payload();
    boost::system::error_code ec;
    stream.expires_after(timeout);
    co_await http::async_write(stream, res, redirect_error(use_awaitable, ec));
    stream.expires_never();
    co_return !ec;
  }

  awaitable<void> session(tcp::socket sock) {
    connections++;
    struct Guard {
      std::atomic<int>& c;
      ~Guard() { c--; }
    } guard{connections};
    auto stream = std::make_shared<beast::tcp_stream>(std::move(sock));
    std::string remote;
    {
      boost::system::error_code ec;
      auto ep = stream->socket().remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    beast::flat_buffer buf;
    for (;;) {
      boost::system::error_code ec;
      if (buf.size() == 0) {  // idle: wait for the next request's first bytes
        stream->expires_after(opts.idle_timeout);
        size_t n = co_await stream->async_read_some(buf.prepare(16384), redirect_error(use_awaitable, ec));
        if (ec) break;
        buf.commit(n);
      }
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(opts.max_header_bytes));
      parser.body_limit(opts.max_body_bytes);
      // Header and body deadlines use a separate timer that cancels the read (tcp_stream's own expiry
      // would close the socket, and a 408 could no longer be sent).
      stream->expires_never();
      auto phase = std::make_shared<int>(0);
      auto timed_out = std::make_shared<bool>(false);
      asio::steady_timer deadline(co_await asio::this_coro::executor);
      auto arm = [&](std::chrono::milliseconds t) {
        int my = ++*phase;
        deadline.expires_after(t);
        deadline.async_wait([phase, my, timed_out, stream](const boost::system::error_code& tec) {
          if (tec || *phase != my) return;
          *timed_out = true;
          boost::system::error_code cec;
          stream->socket().cancel(cec);
        });
      };
      arm(opts.header_timeout);
      co_await http::async_read_header(*stream, buf, parser, redirect_error(use_awaitable, ec));
      if (!ec) {
        auto& h = parser.get();
        if (beast::iequals(h[http::field::expect], "100-continue")) {
          http::response<http::empty_body> cont{http::status::continue_, h.version()};
          co_await http::async_write(*stream, cont, redirect_error(use_awaitable, ec));
        }
      }
      if (!ec) {
        arm(opts.body_timeout);
        co_await http::async_read(*stream, buf, parser, redirect_error(use_awaitable, ec));
      }
      ++*phase;
      deadline.cancel();
      if (*timed_out) ec = beast::error::timeout;
      if (ec) {
        // Answer what can be answered, then close: the stream position is unknown after a failure.
        std::optional<ApiError> err;
        if (ec == http::error::body_limit)
          err.emplace(413, 3006, "Request too large: the body exceeds " + std::to_string(opts.max_body_bytes) + " bytes");
        else if (ec == http::error::header_limit)
          err.emplace(413, 3006, "Request too large: the headers exceed " + std::to_string(opts.max_header_bytes) + " bytes");
        else if (ec == beast::error::timeout)
          err.emplace(408, 3007, "Request timeout: the request was not received in time");
        else if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::connection_reset &&
                 ec != asio::error::operation_aborted)
          err.emplace(400, 3003, "Incomplete or malformed request: " + ec.message());
        if (err) co_await write_full(*stream, error_response(*err, false), 11, false, opts.write_timeout);
        break;
      }

      auto& req = parser.get();
      HttpRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      parse_target(r.target, r.path, r.query);
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(f.value());
      }
      r.body = std::move(req.body());
      r.remote = remote;
      const unsigned version = req.version();
      bool keep_alive = req.keep_alive();

      busy++;
      struct BusyGuard {
        std::atomic<int>& b;
        ~BusyGuard() { b--; }
      } busy_guard{busy};
      auto ex = std::make_shared<ExchangeImpl>(co_await asio::this_coro::executor);
      // The peer sends nothing while it waits for the reply; the watcher tells a real hang-up from a
      // spurious readiness (disconnect_watcher.h).
      auto watcher = DisconnectWatcher::start(stream, stream->socket(), [ex] { ex->mark_closed(); });
      try {
        handler(r, ex);
      } catch (const ApiError& e) {
        ex->respond(error_response(e, false));
      } catch (const std::exception& e) {
        ex->respond(error_response(ApiError(500, 5000, std::string("Internal error: ") + e.what()), false));
      }

      bool ok = true, head_sent = false;
      std::optional<http::response<http::empty_body>> shead;
      std::optional<http::response_serializer<http::empty_body>> sr;
      for (;;) {
        if (ex->closed()) {
          ok = false;
          break;
        }
        auto s = ex->take();
        if (stopping) keep_alive = false;
        if (s.kind == ExchangeImpl::Kind::kFull) {
          ok = co_await write_full(*stream, s.head, version, keep_alive, opts.write_timeout);
          break;
        }
        if (s.kind == ExchangeImpl::Kind::kStream) {
          // Any co_await below leaves the strand, and a notify() then cancels a timer nobody waits on:
          // after a write the loop takes the state again instead of waiting (a stream whose end
          // arrived while its header was being written waited forever).
          const bool wrote = !head_sent || !s.chunk.empty();
          if (!head_sent) {
            ex->mark_head_taken();
            shead.emplace(to_status(s.head.status), version);
            shead->set(http::field::server, "wai");
            shead->set(http::field::content_type, s.head.content_type);
            shead->set(http::field::cache_control, "no-cache");
            for (const auto& [k, v] : s.head.headers) shead->set(k, v);
            shead->keep_alive(keep_alive);
            shead->chunked(true);
            sr.emplace(*shead);
            stream->expires_after(opts.write_timeout);
            co_await http::async_write_header(*stream, *sr, redirect_error(use_awaitable, ec));
            head_sent = true;
            if (ec) { ok = false; break; }
          }
          if (!s.chunk.empty()) {
            stream->expires_after(opts.write_timeout);
            co_await asio::async_write(*stream, http::make_chunk(asio::buffer(s.chunk)), redirect_error(use_awaitable, ec));
            if (ec) { ok = false; break; }
          }
          if (s.ended) {
            stream->expires_after(opts.write_timeout);
            co_await asio::async_write(*stream, http::make_chunk_last(), redirect_error(use_awaitable, ec));
            if (ec) ok = false;
            break;
          }
          stream->expires_never();
          if (wrote) continue;  // more may have arrived while writing
        }
        ex->timer().expires_at(asio::steady_timer::time_point::max());
        co_await ex->timer().async_wait(redirect_error(use_awaitable, ec));
      }
      stream->expires_never();
      watcher->stop();
      if (!ok) {
        ex->mark_closed();  // a failed write: let the handler cancel its work
        break;
      }
      // Cancel the watcher's wait before reading the next request (it completes with operation_aborted).
      boost::system::error_code cec;
      stream->socket().cancel(cec);
      if (!keep_alive) break;
    }
    boost::system::error_code sec;
    stream->socket().shutdown(tcp::socket::shutdown_send, sec);
    stream->socket().close(sec);
  }
};

HttpServer::HttpServer(HttpServerOptions opts, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(opts);
  impl_->handler = std::move(handler);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(impl_->opts.host, ec);
  if (ec) fail(ErrorKind::kInvalidInput, "serve: invalid --host address '" + impl_->opts.host + "': " + ec.message());
  tcp::endpoint ep(addr, impl_->opts.port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    fail(ErrorKind::kIo, "serve: cannot listen on " + impl_->opts.host + ":" + std::to_string(impl_->opts.port) + ": " +
                             ec.message());
}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void HttpServer::run(std::function<void()> on_signal) {
  impl_->on_signal = std::move(on_signal);
  asio::co_spawn(impl_->ioc, impl_->listen(), asio::detached);
  std::function<void(const boost::system::error_code&, int)> on_sig;
  on_sig = [this, &on_sig](const boost::system::error_code& ec, int) {
    if (ec) return;
    if (impl_->stopping.exchange(true)) {  // second signal: stop now
      impl_->ioc.stop();
      return;
    }
    if (impl_->on_signal) impl_->on_signal();
    impl_->signals.async_wait(on_sig);
  };
  impl_->signals.async_wait(on_sig);
  std::vector<std::thread> threads;
  for (int i = 1; i < std::max(1, impl_->opts.io_threads); ++i) threads.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
  for (auto& t : threads) t.join();
}

void HttpServer::stop_accepting() {
  impl_->stopping = true;
  asio::post(impl_->ioc, [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
  });
}

void HttpServer::stop() { impl_->ioc.stop(); }

int HttpServer::open_connections() const { return impl_->connections.load(); }

int HttpServer::busy_requests() const { return impl_->busy.load(); }

}  // namespace wai::server
