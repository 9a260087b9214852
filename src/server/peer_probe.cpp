#include "server/peer_probe.h"

#include <cerrno>

#include <sys/socket.h>
#include <sys/types.h>

namespace wai::server {

PeerState probe_peer(int fd) {
  char c;
  for (;;) {
    ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return PeerState::kData;
    if (n == 0) return PeerState::kClosed;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return PeerState::kNoData;
    return PeerState::kClosed;  // ECONNRESET, ETIMEDOUT, EBADF, ...
  }
}

}  // namespace wai::server
