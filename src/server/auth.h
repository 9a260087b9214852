// Bearer-token authentication. Tokens come from --api-key-file (one per line; blank lines and lines
// starting with '#' are skipped) and/or WAI_API_KEYS (comma-separated). With no tokens configured every
// request is allowed. Comparison takes time independent of where the first mismatch is.
#pragma once

#include <string>
#include <vector>

namespace wai::server {

class Auth {
 public:
  Auth() = default;
  explicit Auth(std::vector<std::string> tokens);
  // Reads tokens from a file (throws wai::Error when it cannot be read) and/or a comma-separated list.
  static Auth from_sources(const std::string& key_file, const std::string& env_list);

  bool enabled() const { return !tokens_.empty(); }
  size_t size() const { return tokens_.size(); }
  // `authorization`: the Authorization header value; accepts "Bearer <token>" (case-insensitive scheme).
  bool check(const std::string& authorization) const;

 private:
  std::vector<std::string> tokens_;
};

// Constant-time equality for the bytes compared (length differences are still observable).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace wai::server
