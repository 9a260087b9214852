// `wai tokenize -m MODEL.gguf "text" [--no-bos] [--pieces] [--stdin]`: prints the token ids of a text,
// space-separated on one line, BOS first unless --no-bos. MODEL may be a full model or a vocab-only GGUF
// (only the tokenizer metadata is read).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace wai::cli {
namespace {

void usage() {
  std::printf(
      "usage: wai tokenize -m MODEL.gguf TEXT [--no-bos] [--pieces]\n"
      "       wai tokenize -m MODEL.gguf --stdin [--no-bos] [--pieces]\n\n"
      "Prints the token ids of TEXT (SentencePiece, as the model sees it), space-separated.\n"
      "  -m, --model FILE  GGUF model or vocab-only GGUF\n"
      "  --no-bos          do not prepend the BOS token\n"
      "  --pieces          print id:piece pairs, one per line, instead\n"
      "  --stdin           read the text (raw bytes) from standard input instead of TEXT\n");
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args args(argc, argv, {"--no-bos", "--pieces", "--stdin", "--help", "-h"},
            {"-m", "--model", "--no-bos", "--pieces", "--stdin", "--help", "-h"});
  if (args.has("--help") || args.has("-h")) {
    usage();
    return 0;
  }
  const auto model = args.get_any({"-m", "--model"});
  const bool from_stdin = args.has("--stdin");
  if (!model || args.positionals().size() != (from_stdin ? 0u : 1u)) {
    usage();
    return 2;
  }
  std::string text;
  if (from_stdin) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  else text = args.positionals()[0];

  const gguf::File file = gguf::File::open(*model);
  const text::Tokenizer tok = text::Tokenizer::from_gguf(file);
  const auto ids = tok.encode(text, !args.has("--no-bos"));
  if (args.has("--pieces")) {
    for (const auto id : ids) std::printf("%d:%s\n", id, tok.piece(id).c_str());
    return 0;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace wai::cli
