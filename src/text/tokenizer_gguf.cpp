// Tokenizer::from_gguf: the vocabulary from llama.cpp's GGUF tokenizer keys.
#include <cmath>

#include "text/tokenizer.h"
#include "util/error.h"

namespace wai::text {

namespace {

const gguf::Array& require_array(const gguf::File& f, std::string_view key) {
  const gguf::Array* a = f.get_array(key);
  if (!a) fail(ErrorKind::kNotFound, "tokenizer: GGUF key '" + std::string(key) + "' is missing");
  return *a;
}

int32_t get_id(const gguf::File& f, std::string_view key, int32_t def) {
  const auto v = f.get_int(key);
  if (!v) return def;
  if (*v < INT32_MIN || *v > INT32_MAX) invalid("tokenizer: '" + std::string(key) + "' out of range");
  return static_cast<int32_t>(*v);
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const gguf::File& f) {
  const auto model = f.get_string("tokenizer.ggml.model");
  if (!model) fail(ErrorKind::kNotFound, "tokenizer: GGUF key 'tokenizer.ggml.model' is missing");
  if (*model != "llama")
    fail(ErrorKind::kUnsupported, "tokenizer: model '" + *model + "' is not supported (only SentencePiece 'llama')");

  Vocab v;
  const gguf::Array& tokens = require_array(f, "tokenizer.ggml.tokens");
  v.pieces.reserve(tokens.items.size());
  for (size_t i = 0; i < tokens.items.size(); ++i) {
    const std::string* s = tokens.items[i].as_string();
    if (!s) invalid("tokenizer: 'tokenizer.ggml.tokens' item " + std::to_string(i) + " is not a string");
    v.pieces.push_back(*s);
  }
  if (const gguf::Array* scores = f.get_array("tokenizer.ggml.scores")) {
    v.scores.reserve(scores->items.size());
    for (size_t i = 0; i < scores->items.size(); ++i) {
      const auto x = scores->items[i].as_float();
      if (!x) invalid("tokenizer: 'tokenizer.ggml.scores' item " + std::to_string(i) + " is not a number");
      v.scores.push_back(static_cast<float>(*x));
    }
  }
  if (const gguf::Array* types = f.get_array("tokenizer.ggml.token_type")) {
    v.types.reserve(types->items.size());
    for (size_t i = 0; i < types->items.size(); ++i) {
      const auto x = types->items[i].as_int();
      if (!x || *x < 0 || *x > 6)
        invalid("tokenizer: 'tokenizer.ggml.token_type' item " + std::to_string(i) + " is not a token type (0..6)");
      v.types.push_back(static_cast<TokenType>(*x));
    }
  }
  v.bos = get_id(f, "tokenizer.ggml.bos_token_id", 1);
  v.eos = get_id(f, "tokenizer.ggml.eos_token_id", 2);
  v.unk = get_id(f, "tokenizer.ggml.unknown_token_id", 0);  // llama.cpp's SPM defaults: unk 0, bos 1, eos 2
  v.eot = get_id(f, "tokenizer.ggml.eot_token_id", -1);
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  return from_vocab(std::move(v));
}

}  // namespace wai::text
