// The LMTP server side (RFC 2033): one coroutine per connection on top of the pure parser,
// with the store work (recipient lookup, delivery) on the blocking pool.
#pragma once

#include <string>

#include "delivery/delivery.h"
#include "net/net.h"

namespace mailark::lmtp {

struct LmtpOptions {
  std::string hostname;
  int timeout_s = 300;
  bool over_quota_temporary = false;
  size_t max_recipients = 1000;
};

class LmtpSession;

class LmtpService {
 public:
  LmtpService(Delivery& delivery, net::BlockingPool& pool, net::SessionRegistry& sessions,
              LmtpOptions options)
      : delivery_(delivery), pool_(pool), sessions_(sessions), options_(std::move(options)) {}

  net::awaitable<void> serve(net::tcp::socket socket);

 private:
  friend class LmtpSession;
  Delivery& delivery_;
  net::BlockingPool& pool_;
  net::SessionRegistry& sessions_;
  LmtpOptions options_;
};

// The reply for a recipient whose delivery (or lookup) ended with `status`.
std::string reply_for_status(const Status& status, const std::string& address,
                             bool over_quota_temporary, bool at_rcpt);

}  // namespace mailark::lmtp
