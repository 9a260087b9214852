#include "server/auth.h"

#include <fstream>

#include "util/error.h"

namespace wai::server {

namespace {
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}
}  // namespace

Auth::Auth(std::vector<std::string> tokens) {
  for (auto& t : tokens)
    if (!trim(t).empty()) tokens_.push_back(trim(t));
}

Auth Auth::from_sources(const std::string& key_file, const std::string& env_list) {
  std::vector<std::string> tokens;
  if (!key_file.empty()) {
    std::ifstream in(key_file);
    if (!in) fail(ErrorKind::kIo, "serve: cannot read --api-key-file '" + key_file + "'");
    std::string line;
    while (std::getline(in, line)) {
      line = trim(line);
      if (!line.empty() && line[0] != '#') tokens.push_back(line);
    }
  }
  size_t pos = 0;
  while (pos < env_list.size()) {
    size_t c = env_list.find(',', pos);
    if (c == std::string::npos) c = env_list.size();
    tokens.push_back(env_list.substr(pos, c - pos));
    pos = c + 1;
  }
  return Auth(std::move(tokens));
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Walk the longer length so the time does not depend on where the strings differ.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool Auth::check(const std::string& authorization) const {
  if (tokens_.empty()) return true;
  std::string h = trim(authorization);
  if (h.size() < 7) return false;
  std::string scheme = h.substr(0, 7);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return false;
  std::string token = trim(h.substr(7));
  bool ok = false;
  for (const auto& t : tokens_) ok |= constant_time_equal(token, t);  // no early exit
  return ok;
}

}  // namespace wai::server
