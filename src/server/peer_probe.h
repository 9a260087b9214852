// What a socket that reported read-readiness while its client waits for a reply actually holds.
//
// Readiness alone says nothing: epoll may report it spuriously, and Boost.Asio 1.74's epoll reactor
// can hand a readiness event of a connection that was just closed to the next connection accepted
// (it recycles the closed socket's descriptor_state, which may still sit in the scheduler's queue
// carrying the old EPOLLIN|EPOLLHUP; an async_wait on the new socket then completes at once). The
// disconnect watcher therefore asks the kernel with a non-blocking peek before it cancels anything.
#pragma once

namespace wai::server {

enum class PeerState {
  kNoData,  // nothing to read and no end of stream: the client is still there (spurious readiness)
  kData,    // bytes are waiting (a pipelined request): the client is still there
  kClosed,  // end of stream (FIN) or a socket error (reset): the client is gone
};

// recv(fd, MSG_PEEK | MSG_DONTWAIT) of one byte; consumes nothing.
PeerState probe_peer(int fd);

}  // namespace wai::server
