// Shared by the text tests: the real Mistral v0.1 vocabulary (testdata/tokenizer/mistral-v0.1-vocab.gguf),
// loaded once per test binary. Tests directory header, not a library header.
#pragma once

#include <string>

#include "format/gguf.h"
#include "text/tokenizer.h"

inline const std::string& tokenizer_testdata_dir() {
  static const std::string dir = std::string(WAI_SHARED_DIR) + "/testdata/tokenizer/";
  return dir;
}

inline const wai::text::Tokenizer& mistral_tokenizer() {
  static const wai::gguf::File file = wai::gguf::File::open(tokenizer_testdata_dir() + "mistral-v0.1-vocab.gguf");
  static const wai::text::Tokenizer tok = wai::text::Tokenizer::from_gguf(file);
  return tok;
}
