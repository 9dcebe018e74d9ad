#pragma once
// Result<T>: a value or an Error. Control-plane code (model, store, api,
// southbound, agent control) returns it instead of throwing; the API maps each
// Errc to Neutron's error body and HTTP code in one place. Member names follow
// std::expected (g++ 12 has it only under C++23), so moving to it is a rename.
//
//   Result<uint16_t> parsePort(std::string_view s);
//   auto port = parsePort(text);
//   if (!port) return port.error();   // an Error converts to any Result<U>
//   listen(*port);
//
// Thread-safety: plain value types with no shared state.

#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace canopy {

// What went wrong, in the terms a caller acts on. Keep in step with errcName().
enum class Errc {
  InvalidArgument,     // the caller's input is wrong; retrying it as is will not help
  NotFound,            // the thing named does not exist
  Conflict,            // the request clashes with current state (in use, duplicate, lost race)
  PreconditionFailed,  // an explicit precondition (revision, If-Match) did not hold
  Compacted,           // the history asked for is gone; resync from current state
  Unauthenticated,     // no valid credentials (HTTP 401)
  PermissionDenied,    // valid credentials, but not allowed (HTTP 403)
  Unavailable,         // a dependency is down or busy; retrying later may work
  Internal,            // a bug or broken invariant on our side
};

std::string_view errcName(Errc code) noexcept;

class [[nodiscard]] Error {
 public:
  // `reason` is a stable, machine-readable name for the specific failure
  // (Neutron's error type, e.g. "NetworkInUse"); empty when the code says all.
  Error(Errc code, std::string message, std::string reason = {})
      : code_(code), message_(std::move(message)), reason_(std::move(reason)) {}

  Errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& reason() const noexcept { return reason_; }

  // "Conflict: key exists", for logs and command-line output.
  std::string toString() const;

  // Prefixes the message with where it happened: "opening store x.db: <message>".
  Error withContext(std::string_view context) const;

  friend bool operator==(const Error&, const Error&) = default;

 private:
  Errc code_;
  std::string message_;
  std::string reason_;
};

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported; use a pointer");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

 public:
  using value_type = T;
  using error_type = Error;

  Result() requires std::default_initializable<T> : v_(std::in_place_index<0>) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  template <typename U = T>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, Result> &&
           !std::is_same_v<std::remove_cvref_t<U>, Error>) Result(U&& value)
      : v_(std::in_place_index<0>, std::forward<U>(value)) {}

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    checkValue();
    return *std::get_if<0>(&v_);
  }
  const T& value() const& {
    checkValue();
    return *std::get_if<0>(&v_);
  }
  T&& value() && {
    checkValue();
    return std::move(*std::get_if<0>(&v_));
  }

  const Error& error() const& {
    CANOPY_CHECK(!has_value());
    return *std::get_if<1>(&v_);
  }
  Error&& error() && {
    CANOPY_CHECK(!has_value());
    return std::move(*std::get_if<1>(&v_));
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? *std::get_if<0>(&v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void checkValue() const {
    CANOPY_CHECK_MSG(has_value(), std::get_if<1>(&v_)->toString().c_str());
  }

  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  using error_type = Error;

  Result() = default;
  Result(Error error) : error_(std::move(error)) {}

  bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }

  void value() const { CANOPY_CHECK_MSG(has_value(), error_->toString().c_str()); }

  const Error& error() const& {
    CANOPY_CHECK(!has_value());
    return *error_;
  }
  Error&& error() && {
    CANOPY_CHECK(!has_value());
    return std::move(*error_);
  }

 private:
  std::optional<Error> error_;
};

// Success for Result<void>: `return ok();`
inline Result<void> ok() { return {}; }

}  // namespace canopy
