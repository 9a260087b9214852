// `wai inspect FILE.gguf [--full] [--max-items N]`: prints a GGUF file's header, metadata (key, type,
// value; long arrays abbreviated as `[32000 x string: "<unk>", "<s>", ...]`) and tensor table (name,
// type, dims, offset, bytes), then totals per type. The file is mapped; only its header pages are read.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "util/error.h"

namespace wai::cli {
namespace {

void usage() {
  std::printf(
      "usage: wai inspect FILE.gguf [--full] [--max-items N]\n\n"
      "Prints the GGUF version, alignment, metadata and tensor table.\n"
      "  --full          print whole arrays and strings (default: first 8 items)\n"
      "  --max-items N   array items to print before abbreviating\n");
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (uint64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", n / 1073741824.0);
  else if (n >= (uint64_t{1} << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", n / 1048576.0);
  else if (n >= 1024) std::snprintf(buf, sizeof buf, "%.2f KiB", n / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

std::string type_label(const gguf::Value& v) {
  std::string t(gguf::value_type_name(v.type));
  if (const auto* a = v.as_array()) t += "[" + std::string(gguf::value_type_name(a->elem_type)) + "]";
  return t;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args(argc, argv, {"--full", "--help", "-h"}, {"--full", "--max-items", "--help", "-h"});
  if (args.has("--help") || args.has("-h")) {
    usage();
    return 0;
  }
  if (args.positionals().size() != 1) {
    usage();
    return 2;
  }
  int64_t max_items = args.get_int({"--max-items"}, 8);
  if (max_items < 0) invalid("--max-items must be >= 0");
  const size_t limit = args.has("--full") ? std::numeric_limits<size_t>::max() : static_cast<size_t>(max_items);

  const gguf::File f = gguf::File::open(args.positionals()[0]);
  std::printf("file: %s (%s)\n", f.path().c_str(), human_bytes(f.bytes().size()).c_str());
  std::printf("version: %u\n", f.version());
  std::printf("alignment: %llu\n", static_cast<unsigned long long>(f.alignment()));
  std::printf("data offset: %llu\n", static_cast<unsigned long long>(f.data_offset()));

  std::printf("\nmetadata: %zu keys\n", f.metadata().size());
  size_t key_w = 0, vtype_w = 0;
  for (const auto& kv : f.metadata()) {
    key_w = std::max(key_w, kv.key.size());
    vtype_w = std::max(vtype_w, type_label(kv.value).size());
  }
  for (const auto& kv : f.metadata())
    std::printf("  %-*s  %-*s  %s\n", static_cast<int>(key_w), kv.key.c_str(), static_cast<int>(vtype_w),
                type_label(kv.value).c_str(), kv.value.to_string(limit).c_str());

  std::printf("\ntensors: %zu\n", f.tensors().size());
  size_t name_w = 4, type_w = 4;
  for (const auto& t : f.tensors()) {
    name_w = std::max(name_w, t.name.size());
    type_w = std::max(type_w, dtype_name(t.type).size());
  }
  if (!f.tensors().empty())
    std::printf("  %-*s  %-*s  %-24s  %12s  %12s\n", static_cast<int>(name_w), "name", static_cast<int>(type_w), "type",
                "dims", "offset", "bytes");
  uint64_t total_bytes = 0;
  int64_t total_elements = 0;
  std::map<std::string, std::pair<size_t, uint64_t>> by_type;  // type -> (count, bytes)
  for (const auto& t : f.tensors()) {
    std::string dims = "[";
    for (size_t i = 0; i < t.dims.size(); ++i) dims += (i ? ", " : "") + std::to_string(t.dims[i]);
    dims += "]";
    const std::string type(dtype_name(t.type));
    std::printf("  %-*s  %-*s  %-24s  %12llu  %12llu\n", static_cast<int>(name_w), t.name.c_str(),
                static_cast<int>(type_w), type.c_str(), dims.c_str(), static_cast<unsigned long long>(t.offset), static_cast<unsigned long long>(t.nbytes));
    total_bytes += t.nbytes;
    total_elements += t.n_elements();
    auto& e = by_type[type];
    e.first++;
    e.second += t.nbytes;
  }
  std::printf("\ntotal: %zu tensors, %lld elements, %llu bytes (%s)\n", f.tensors().size(),
              static_cast<long long>(total_elements), static_cast<unsigned long long>(total_bytes),
              human_bytes(total_bytes).c_str());
  for (const auto& [type, e] : by_type)
    std::printf("  %-*s  %zu tensors, %llu bytes%s\n", static_cast<int>(type_w), type.c_str(), e.first, static_cast<unsigned long long>(e.second),
                dtype_from_name(type) && !dtype_info(*dtype_from_name(type)).supported ? " (not supported by wai)" : "");
  return 0;
}

}  // namespace wai::cli
