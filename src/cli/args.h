// Minimal command-line parsing shared by the subcommands: "--name value", "--name=value", "-x value",
// boolean flags, and positionals. Unknown options are errors (wai::Error kInvalidInput).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace wai::cli {

class Args {
 public:
  // `flags`: options that take no value (e.g. {"--chat", "--json"}); all other options take one.
  // `known`: every accepted option name (aliases included); empty = accept all.
  Args(int argc, char** argv, std::set<std::string> flags, std::set<std::string> known);

  bool has(const std::string& name) const;
  std::optional<std::string> get(const std::string& name) const;  // last occurrence
  std::string get_or(const std::string& name, const std::string& def) const;
  // First of several aliases that is present ("-m", "--model").
  std::optional<std::string> get_any(std::initializer_list<const char*> names) const;
  int64_t get_int(std::initializer_list<const char*> names, int64_t def) const;   // throws on non-numbers
  double get_float(std::initializer_list<const char*> names, double def) const;
  const std::vector<std::string>& positionals() const { return pos_; }

 private:
  std::map<std::string, std::vector<std::string>> opts_;
  std::vector<std::string> pos_;
};

}  // namespace wai::cli
