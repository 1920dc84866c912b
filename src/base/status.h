// Status and Result<T>: how every expected failure travels in mailark (no exceptions across
// module boundaries). The error classes are the short store enum from STYLE.md rule 3; each
// protocol maps them to its own replies in one place.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace mailark {

enum class ErrorCode {
  kOk = 0,
  kNotFound,   // the named thing does not exist
  kExists,     // it already exists
  kOverQuota,  // the account's quota would be exceeded
  kConflict,   // a concurrent change or a precondition failed
  kCorrupt,    // stored data failed verification: never served
  kIo,         // the environment failed (disk, permissions)
  kTemporary,  // try again later (busy, shutting down)
  kInvalid,    // the caller's input is malformed
  kTooLarge,   // input exceeds a configured limit
};

const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: blob ab12... hash mismatch"
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status not_found(std::string m) {
  return {ErrorCode::kNotFound, std::move(m)};
}
inline Status exists_error(std::string m) {
  return {ErrorCode::kExists, std::move(m)};
}
inline Status over_quota(std::string m) {
  return {ErrorCode::kOverQuota, std::move(m)};
}
inline Status conflict(std::string m) {
  return {ErrorCode::kConflict, std::move(m)};
}
inline Status corrupt(std::string m) {
  return {ErrorCode::kCorrupt, std::move(m)};
}
inline Status io_error(std::string m) {
  return {ErrorCode::kIo, std::move(m)};
}
inline Status temporary(std::string m) {
  return {ErrorCode::kTemporary, std::move(m)};
}
inline Status invalid(std::string m) {
  return {ErrorCode::kInvalid, std::move(m)};
}
inline Status too_large(std::string m) {
  return {ErrorCode::kTooLarge, std::move(m)};
}

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T value() && { return std::move(*value_); }  // by value: safe on temporaries
  T value_or(T fallback) const& { return value_ ? *value_ : fallback; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace mailark

// Returns early from the enclosing function when `expr` yields a non-ok Status.
#define MK_RETURN_IF_ERROR(expr)                \
  do {                                          \
    ::mailark::Status mk_status_ = (expr);      \
    if (!mk_status_.is_ok()) return mk_status_; \
  } while (0)

#define MK_CONCAT_INNER(a, b) a##b
#define MK_CONCAT(a, b) MK_CONCAT_INNER(a, b)
// Declares `lhs` from a Result<T>, returning its Status on failure.
#define MK_ASSIGN_OR_RETURN(lhs, expr) \
  MK_ASSIGN_OR_RETURN_IMPL(MK_CONCAT(mk_result_, __LINE__), lhs, expr)
#define MK_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.is_ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
