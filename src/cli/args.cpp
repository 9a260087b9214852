#include "cli/args.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "util/error.h"

namespace wai::cli {

Args::Args(int argc, char** argv, std::set<std::string> flags, std::set<std::string> known) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
      std::string name = a, value;
      bool inline_value = false;
      if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        inline_value = true;
      }
      if (!known.empty() && !known.count(name)) invalid("unknown option '" + name + "'");
      if (flags.count(name)) {
        opts_[name].push_back("1");
        continue;
      }
      if (!inline_value) {
        if (i + 1 >= argc) invalid("option '" + name + "' needs a value");
        value = argv[++i];
      }
      opts_[name].push_back(value);
    } else {
      pos_.push_back(a);
    }
  }
}

bool Args::has(const std::string& name) const { return opts_.count(name) != 0; }

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = opts_.find(name);
  if (it == opts_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string Args::get_or(const std::string& name, const std::string& def) const { return get(name).value_or(def); }

std::optional<std::string> Args::get_any(std::initializer_list<const char*> names) const {
  for (const char* n : names)
    if (auto v = get(n)) return v;
  return std::nullopt;
}

int64_t Args::get_int(std::initializer_list<const char*> names, int64_t def) const {
  auto v = get_any(names);
  if (!v) return def;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size()) invalid("option '" + std::string(*names.begin()) + "' expects an integer, got '" + *v + "'");
  return out;
}

double Args::get_float(std::initializer_list<const char*> names, double def) const {
  auto v = get_any(names);
  if (!v) return def;
  char* end = nullptr;
  double d = std::strtod(v->c_str(), &end);
  if (v->empty() || end != v->c_str() + v->size()) invalid("option '" + std::string(*names.begin()) + "' expects a number, got '" + *v + "'");
  return d;
}

}  // namespace wai::cli
