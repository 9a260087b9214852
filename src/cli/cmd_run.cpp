// PLACEHOLDER: replaced by the real implementation.
#include <cstdio>
#include "cli/commands.h"
namespace wai::cli {
int cmd_run(int, char**) { std::fprintf(stderr, "not implemented yet\n"); return 2; }
}  // namespace wai::cli
