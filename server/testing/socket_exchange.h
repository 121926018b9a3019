// Test-only (fuzzers): one whole client exchange on a connected stream
// socket, for servers that must answer or close every connection.
#ifndef NPYSTREAM_SERVER_TESTING_SOCKET_EXCHANGE_H_
#define NPYSTREAM_SERVER_TESTING_SOCKET_EXCHANGE_H_

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace npystream::testing {

// Sends `bytes` on `fd` (stopping early when the server hangs up), half-
// closes, and returns what came back before the server closed; closes `fd`.
// Aborts, naming `who`, when the server keeps the connection open for 5 s.
inline std::string ExchangeAndClose(int fd, const std::string& bytes, const char* who) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server closed early (a refused request): fine
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) {
      std::fprintf(stderr, "%s: the server kept a half-closed connection open\n", who);
      std::abort();
    }
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_SOCKET_EXCHANGE_H_
