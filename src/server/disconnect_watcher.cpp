#include "server/disconnect_watcher.h"

#include "server/peer_probe.h"

namespace wai::server {

std::shared_ptr<DisconnectWatcher> DisconnectWatcher::start(std::shared_ptr<void> owner,
                                                            boost::asio::ip::tcp::socket& socket,
                                                            std::function<void()> on_gone) {
  auto w = std::make_shared<DisconnectWatcher>(std::move(owner), socket, std::move(on_gone));
  w->arm();
  return w;
}

void DisconnectWatcher::arm() {
  socket_.async_wait(boost::asio::ip::tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) { self->on_ready(ec); });
}

void DisconnectWatcher::on_ready(const boost::system::error_code& ec) {
  if (ec || !active_) return;  // cancelled (the reply is done) or stopped
  switch (probe_peer(socket_.native_handle())) {
    case PeerState::kClosed:
      active_ = false;
      if (on_gone_) on_gone_();
      return;
    case PeerState::kData:  // the next request already arrives: the client is there; read it later
      active_ = false;
      return;
    case PeerState::kNoData:  // readiness that was not the client's: keep watching
      ++spurious_;
      arm();
      return;
  }
}

}  // namespace wai::server
