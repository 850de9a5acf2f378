// afbus::Expected — the error-as-value type used across libafbus.
//
// g++ 12 ships std::expected only with -std=c++2b; the project builds as C++20 (see docs/architecture.md),
// so this is a deliberately small subset of std::expected with the same spelling, to be replaced by
// `template <class T, class E> using Expected = std::expected<T, E>;` once the toolchain moves.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include <variant>

namespace afbus {

namespace detail {
// Reading the value of an Expected that holds an error (or the error of one that holds a value) is a
// programming error. It stops the program in every build type, release included, rather than read
// whatever the storage holds.
[[noreturn]] inline void expected_misuse(const char* what) noexcept {
    std::fprintf(stderr, "afbus::Expected: %s\n", what);
    std::abort();
}
inline constexpr void require(bool holds, const char* what) noexcept {
    if (!holds) expected_misuse(what);
}
}  // namespace detail

template <class E>
class Unexpected {
public:
    constexpr explicit Unexpected(E error) : error_(std::move(error)) {}
    constexpr const E& error() const& noexcept { return error_; }
    constexpr E&& error() && noexcept { return std::move(error_); }

private:
    E error_;
};

template <class E>
Unexpected(E) -> Unexpected<E>;

template <class T, class E>
class [[nodiscard]] Expected {
public:
    using value_type = T;
    using error_type = E;

    template <class U = T>
        requires std::is_constructible_v<T, U&&>
    constexpr Expected(U&& value) : storage_(std::in_place_index<0>, std::forward<U>(value)) {}
    template <class G>
    constexpr Expected(Unexpected<G> error) : storage_(std::in_place_index<1>, std::move(error).error()) {}

    constexpr bool has_value() const noexcept { return storage_.index() == 0; }
    constexpr explicit operator bool() const noexcept { return has_value(); }

    constexpr T& value() & { detail::require(has_value(), "value() of an error"); return *std::get_if<0>(&storage_); }
    constexpr const T& value() const& { detail::require(has_value(), "value() of an error"); return *std::get_if<0>(&storage_); }
    constexpr T&& value() && { detail::require(has_value(), "value() of an error"); return std::move(*std::get_if<0>(&storage_)); }
    constexpr T& operator*() & { return value(); }
    constexpr const T& operator*() const& { return value(); }
    constexpr T&& operator*() && { return std::move(*this).value(); }
    constexpr T* operator->() { return &value(); }
    constexpr const T* operator->() const { return &value(); }

    constexpr const E& error() const& { detail::require(!has_value(), "error() of a value"); return *std::get_if<1>(&storage_); }
    constexpr E&& error() && { detail::require(!has_value(), "error() of a value"); return std::move(*std::get_if<1>(&storage_)); }

    template <class U>
    constexpr T value_or(U&& fallback) const& {
        return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
    }

    // As std::expected: equal to a value when it holds an equal one.
    template <class U>
        requires(!std::is_same_v<std::remove_cvref_t<U>, Expected>)
    friend constexpr bool operator==(const Expected& x, const U& v) {
        return x.has_value() && x.value() == v;
    }

private:
    std::variant<T, E> storage_;
};

// Expected<void, E>: success carries nothing.
template <class E>
class [[nodiscard]] Expected<void, E> {
public:
    using value_type = void;
    using error_type = E;

    constexpr Expected() noexcept = default;
    template <class G>
    constexpr Expected(Unexpected<G> error) : error_(std::move(error).error()), failed_(true) {}

    constexpr bool has_value() const noexcept { return !failed_; }
    constexpr explicit operator bool() const noexcept { return has_value(); }
    constexpr void value() const { detail::require(has_value(), "value() of an error"); }
    constexpr const E& error() const& { detail::require(!has_value(), "error() of a value"); return error_; }
    constexpr E&& error() && { detail::require(!has_value(), "error() of a value"); return std::move(error_); }

private:
    E error_{};
    bool failed_ = false;
};

}  // namespace afbus
