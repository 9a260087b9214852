#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "kernels/cpu.h"
#include "util/error.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* help;
};

const Command kCommands[] = {
    {"serve", wai::cli::cmd_serve, "serve the Workers AI / OpenAI HTTP API"},
    {"run", wai::cli::cmd_run, "generate text from a prompt"},
    {"eval", wai::cli::cmd_eval, "teacher-forced evaluation of token ids"},
    {"tokenize", wai::cli::cmd_tokenize, "print the token ids of a text"},
    {"inspect", wai::cli::cmd_inspect, "print a GGUF file's metadata and tensor table"},
    {"make-model", wai::cli::cmd_make_model, "write a random-weight test model"},
    {"bench", wai::cli::cmd_bench, "measure prefill and decode speed"},
};

void usage() {
  std::fprintf(stderr, "usage: wai COMMAND [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(stderr, "  %-11s %s\n", c.name, c.help);
  std::fprintf(stderr, "\n`wai COMMAND --help` describes each command's options.\n");
  std::fprintf(stderr, "Every command also takes --cpu LEVEL (or WAI_CPU=LEVEL): the highest kernel level to use,\n"
                       "one of %s (default: the best this CPU has).\n", wai::kernels::cpu_level_choices());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  try {
    wai::kernels::configure_cpu_level(argc, argv);  // WAI_CPU, --cpu (taken out of argv)
  } catch (const wai::Error& e) {
    std::fprintf(stderr, "wai: error: %s\n", e.what());
    return 2;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.fn(argc - 2, argv + 2);
    } catch (const wai::Error& e) {
      std::fprintf(stderr, "wai %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wai %s: internal error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "wai: unknown command '%s'\n", argv[1]);
  usage();
  return 2;
}
