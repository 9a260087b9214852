// Notices a client that goes away while it waits for a reply (it sends nothing meanwhile, so the
// socket turning readable is the only sign), without ever taking a live client for a gone one.
//
// Each read-readiness completion is checked with probe_peer() (a non-blocking peek): end of stream or
// a socket error calls on_gone; waiting bytes (a pipelined request) end the watch, to be read after
// the reply; nothing at all is a spurious wake-up, and the watch re-arms. Readiness without that check
// is not evidence: see peer_probe.h for how Boost.Asio 1.74 delivers one closed connection's
// readiness to the next accepted one.
//
// Threads: all of it runs on the socket's executor (the connection's strand), like the connection
// coroutine that calls start() and stop().
#pragma once

#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <functional>
#include <memory>

#include <boost/asio/ip/tcp.hpp>

namespace wai::server {

class DisconnectWatcher : public std::enable_shared_from_this<DisconnectWatcher> {
 public:
  // Starts watching `socket`, which `owner` keeps alive for as long as a wait is pending. `on_gone`
  // runs at most once, on the socket's executor.
  static std::shared_ptr<DisconnectWatcher> start(std::shared_ptr<void> owner, boost::asio::ip::tcp::socket& socket,
                                                  std::function<void()> on_gone);

  // Ends the watch: no callback after this. The caller then cancels the socket's pending wait (the
  // reply is complete and the connection goes on to read its next request, or closes).
  void stop() { active_ = false; }
  int spurious_wakeups() const { return spurious_; }

  DisconnectWatcher(std::shared_ptr<void> owner, boost::asio::ip::tcp::socket& socket, std::function<void()> on_gone)
      : owner_(std::move(owner)), socket_(socket), on_gone_(std::move(on_gone)) {}

 private:
  void arm();
  void on_ready(const boost::system::error_code& ec);

  std::shared_ptr<void> owner_;
  boost::asio::ip::tcp::socket& socket_;
  std::function<void()> on_gone_;
  bool active_ = true;
  int spurious_ = 0;
};

}  // namespace wai::server
