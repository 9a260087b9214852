// Typed errors for every boundary that faces input (files, requests, command lines).
//
// Contract: code that parses or validates untrusted input throws wai::Error with a kind and a message
// that names the problem (e.g. "gguf: tensor 'blk.0.attn_q.weight' data [..] lies outside the file").
// Callers at the edge (CLI main, HTTP handlers) catch wai::Error and report it; nothing aborts on input.
// Internal invariants use assert(); they are bugs, not input errors.
#pragma once

#include <stdexcept>
#include <string>

namespace wai {

enum class ErrorKind {
  kInvalidInput,   // malformed file or request
  kNotFound,       // missing file, key, tensor, model
  kUnsupported,    // valid but not handled (unknown tensor type, architecture)
  kIo,             // OS-level failure (open, mmap, read)
  kResource,       // out of memory / capacity
  kInternal,
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

[[noreturn]] inline void fail(ErrorKind kind, const std::string& message) { throw Error(kind, message); }
[[noreturn]] inline void invalid(const std::string& message) { throw Error(ErrorKind::kInvalidInput, message); }

}  // namespace wai
