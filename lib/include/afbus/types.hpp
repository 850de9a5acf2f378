// Typed D-Bus values: C++ types carry their D-Bus signature at compile time (signature_of<T>), and
// MessageBuilder::append / MessageReader::read marshal them directly, without a dynamic Value.
//
//   y uint8_t   b bool      n int16_t   q uint16_t  i int32_t   u uint32_t  x int64_t   t uint64_t
//   d double    s std::string (std::string_view to append or to borrow from the message)
//   o ObjectPath  g Signature  h UnixFd  v Variant
//   a std::vector<T>, std::array<T, N> (the element count is checked when reading)
//   a{..} std::map<K, V> / std::unordered_map<K, V>
//   (..) std::tuple<T...>, or a struct described with AFBUS_STRUCT(Type, member, ...)
//   v Variant (any type, as a Value), or std::variant<T...> (one of T..., chosen by the value's signature)
//   enums as their underlying integer type
// std::optional has no mapping (D-Bus has no null). A type without a mapping is a compile error that names
// it (detail::check_marshallable).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "afbus/fd.hpp"
#include "afbus/message.hpp"
#include "afbus/names.hpp"
#include "afbus/signature.hpp"
#include "afbus/validate.hpp"
#include "afbus/value.hpp"

namespace afbus {

// An object path. Not validated on construction (so that building one can't fail); appending an invalid
// one makes MessageBuilder::build() fail with WireError::BadObjectPath. Use valid() to check early.
class ObjectPath {
public:
    ObjectPath() : path_("/") {}
    explicit ObjectPath(std::string path) : path_(std::move(path)) {}
    [[nodiscard]] const std::string& str() const noexcept { return path_; }
    [[nodiscard]] bool valid() const noexcept { return is_valid_object_path(path_); }
    friend auto operator<=>(const ObjectPath&, const ObjectPath&) = default;

private:
    std::string path_;
};

// A type signature as a value ('g').
class Signature {
public:
    Signature() = default;
    explicit Signature(std::string signature) : signature_(std::move(signature)) {}
    [[nodiscard]] const std::string& str() const noexcept { return signature_; }
    [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(validate_signature(signature_)); }
    friend auto operator<=>(const Signature&, const Signature&) = default;

private:
    std::string signature_;
};

// A file descriptor travelling in a message ('h'). Appending dups it into the message; reading dups the
// message's fd, so both sides keep owning their own.
class UnixFd {
public:
    UnixFd() = default;
    explicit UnixFd(Fd fd) : fd_(std::move(fd)) {}
    [[nodiscard]] const Fd& fd() const noexcept { return fd_; }
    [[nodiscard]] Fd release() && noexcept { return std::move(fd_); }

private:
    Fd fd_;
};

// A variant ('v'): any value with its type. Build from any typed value or from a Value.
class Variant {
public:
    Variant() : value_(Value::byte(0)) {}
    explicit Variant(Value value) : value_(std::move(value)) {}
    template <class T>
        requires(!std::is_same_v<std::remove_cvref_t<T>, Value> && !std::is_same_v<std::remove_cvref_t<T>, Variant>)
    explicit Variant(const T& typed);

    [[nodiscard]] const Value& value() const noexcept { return value_; }
    [[nodiscard]] std::string_view type() const noexcept { return value_.type(); }
    // The contained value as T, or TypeMismatch.
    template <class T>
    [[nodiscard]] Expected<T, WireError> get() const;

    friend bool operator==(const Variant&, const Variant&) = default;

private:
    Value value_;
};

namespace detail {

template <std::size_t N>
struct SignatureString {
    std::array<char, N + 1> chars{};
    constexpr SignatureString() = default;
    constexpr SignatureString(const char (&s)[N + 1]) {
        for (std::size_t i = 0; i <= N; ++i) chars[i] = s[i];
    }
    static constexpr std::size_t size() { return N; }
    constexpr std::string_view view() const { return {chars.data(), N}; }
};
template <std::size_t N>
SignatureString(const char (&)[N]) -> SignatureString<N - 1>;

template <std::size_t... Ns>
constexpr auto concat(const SignatureString<Ns>&... parts) {
    SignatureString<(Ns + ... + 0)> out;
    std::size_t at = 0;
    [[maybe_unused]] auto put = [&out, &at](const auto& part) {  // unused for no parts: signature_of_all<>
        for (std::size_t i = 0; i < part.size(); ++i) out.chars[at++] = part.chars[i];
    };
    (put(parts), ...);
    out.chars[at] = '\0';
    return out;
}

template <class T, class = void>
struct Codec {
    static constexpr bool supported = false;
};

template <class T>
concept DBusType = Codec<std::remove_cvref_t<T>>::supported;

template <class T, char Code>
struct FixedCodec {
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{{Code, '\0'}};
    static void encode(MessageBuilder& b, T v) {
        if constexpr (sizeof(T) == 1) b.body().put_u8(static_cast<std::uint8_t>(v));
        else if constexpr (sizeof(T) == 2) b.body().put_u16(static_cast<std::uint16_t>(v));
        else if constexpr (std::is_same_v<T, double>) b.body().put_double(v);
        else if constexpr (sizeof(T) == 4) b.body().put_u32(static_cast<std::uint32_t>(v));
        else b.body().put_u64(static_cast<std::uint64_t>(v));
    }
    static bool decode(MessageReader& r, T& v) {
        Decoder& d = r.decoder();
        if constexpr (sizeof(T) == 1) {
            std::uint8_t x;
            if (!d.read_u8(x)) return false;
            v = static_cast<T>(x);
        } else if constexpr (sizeof(T) == 2) {
            std::uint16_t x;
            if (!d.read_u16(x)) return false;
            v = static_cast<T>(x);
        } else if constexpr (std::is_same_v<T, double>) {
            std::uint64_t x;
            if (!d.read_u64(x)) return false;
            v = std::bit_cast<double>(x);
        } else if constexpr (sizeof(T) == 4) {
            std::uint32_t x;
            if (!d.read_u32(x)) return false;
            v = static_cast<T>(x);
        } else {
            std::uint64_t x;
            if (!d.read_u64(x)) return false;
            v = static_cast<T>(x);
        }
        return true;
    }
};

template <> struct Codec<std::uint8_t> : FixedCodec<std::uint8_t, 'y'> {};
template <> struct Codec<std::int16_t> : FixedCodec<std::int16_t, 'n'> {};
template <> struct Codec<std::uint16_t> : FixedCodec<std::uint16_t, 'q'> {};
template <> struct Codec<std::int32_t> : FixedCodec<std::int32_t, 'i'> {};
template <> struct Codec<std::uint32_t> : FixedCodec<std::uint32_t, 'u'> {};
template <> struct Codec<std::int64_t> : FixedCodec<std::int64_t, 'x'> {};
template <> struct Codec<std::uint64_t> : FixedCodec<std::uint64_t, 't'> {};
template <> struct Codec<double> : FixedCodec<double, 'd'> {};

template <>
struct Codec<bool> {
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{"b"};
    static void encode(MessageBuilder& b, bool v) { b.body().put_u32(v ? 1 : 0); }
    static bool decode(MessageReader& r, bool& v) {
        std::uint32_t x;
        if (!r.decoder().read_u32(x)) return false;
        if (x > 1) return r.decoder().fail(WireError::BadBoolean);
        v = x != 0;
        return true;
    }
};

template <class S>
struct StringCodec {
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{"s"};
    static void encode(MessageBuilder& b, std::string_view v) {
        if (!is_valid_utf8(v)) b.fail(WireError::StringInvalidUtf8);
        b.body().put_string(v);
    }
    static bool decode(MessageReader& r, S& v) {
        std::string_view s;
        if (!r.decoder().read_string(s)) return false;
        v = S(s);
        return true;
    }
};
template <> struct Codec<std::string> : StringCodec<std::string> {};
// Borrows from the message: valid as long as the message lives.
template <> struct Codec<std::string_view> : StringCodec<std::string_view> {};

template <>
struct Codec<ObjectPath> {
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{"o"};
    static void encode(MessageBuilder& b, const ObjectPath& v) {
        if (!v.valid()) b.fail(WireError::BadObjectPath);
        b.body().put_string(v.str());
    }
    static bool decode(MessageReader& r, ObjectPath& v) {
        std::string_view s;
        if (!r.decoder().read_string(s)) return false;
        v = ObjectPath(std::string(s));
        return true;
    }
};

template <>
struct Codec<Signature> {
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{"g"};
    static void encode(MessageBuilder& b, const Signature& v) {
        if (!v.valid()) b.fail(WireError::BadSignatureValue);
        b.body().put_signature(v.str().size() <= kMaxSignatureLength ? std::string_view(v.str()) : "");
    }
    static bool decode(MessageReader& r, Signature& v) {
        std::string_view s;
        if (!r.decoder().read_signature(s)) return false;
        v = Signature(std::string(s));
        return true;
    }
};

template <>
struct Codec<UnixFd> {
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{"h"};
    static void encode(MessageBuilder& b, const UnixFd& v) { b.body().put_u32(b.add_fd(v.fd())); }
    static bool decode(MessageReader& r, UnixFd& v) {
        std::uint32_t index;
        if (!r.decoder().read_u32(index)) return false;
        const auto& fds = r.message().fds();
        if (index >= fds.size()) return r.decoder().fail(WireError::FdIndexOutOfRange);
        Fd copy = fds[index].duplicate();
        if (!copy) return r.decoder().fail(WireError::TooManyFds);
        v = UnixFd(std::move(copy));
        return true;
    }
};

template <>
struct Codec<Variant> {
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{"v"};
    static void encode(MessageBuilder& b, const Variant& v) {
        b.body().put_signature(v.type());
        if (auto r = encode_value(b.body(), v.value()); !r) b.fail(r.error());
    }
    static bool decode(MessageReader& r, Variant& v) {
        std::string_view type;
        if (!r.decoder().read_signature(type)) return false;
        if (!validate_single_complete_type(type)) return r.decoder().fail(WireError::BadSignatureValue);
        auto value = decode_value(r.decoder(), type);
        if (!value) return r.decoder().fail(value.error());
        v = Variant(std::move(*value));
        return true;
    }
};

// "ay" borrowed from the message (valid as long as the message lives), or appended without a copy of its own.
template <>
struct Codec<std::span<const std::uint8_t>> {
    static constexpr bool supported = true;
    static constexpr SignatureString<2> signature{"ay"};
    static void encode(MessageBuilder& b, std::span<const std::uint8_t> v) {
        auto mark = b.body().begin_array(1);
        b.body().put_bytes(v.data(), v.size());
        if (b.body().end_array(mark) > kMaxArrayLength) b.fail(WireError::ArrayTooLong);
    }
    static bool decode(MessageReader& r, std::span<const std::uint8_t>& v) {
        Decoder& d = r.decoder();
        std::uint32_t length;
        if (!d.read_u32(length)) return false;
        if (length > kMaxArrayLength) return d.fail(WireError::ArrayTooLong);
        const std::byte* bytes;
        if (!d.read_bytes(length, bytes)) return false;
        v = {reinterpret_cast<const std::uint8_t*>(bytes), length};
        return true;
    }
};

// Advances over one element of an array while decoding; shared by vectors and maps.
template <class Element, class Each>
bool decode_array(MessageReader& r, Each&& each) {
    Decoder& d = r.decoder();
    std::uint32_t length;
    if (!d.read_u32(length)) return false;
    if (length > kMaxArrayLength) return d.fail(WireError::ArrayTooLong);
    if (!d.align(alignment_of(Codec<Element>::signature.chars[0]))) return false;
    if (length > d.remaining()) return d.fail(WireError::Truncated);
    const std::size_t end = d.pos() + length;
    while (d.pos() < end) {
        if (!each()) return false;
    }
    if (d.pos() != end) return d.fail(WireError::ArrayLengthMismatch);
    return true;
}

// Appends the elements of a contiguous range as an array; shared by std::vector and std::array.
template <class T>
void encode_array(MessageBuilder& b, std::span<const T> elements) {
    if constexpr (std::is_same_v<T, std::uint8_t>) {
        Codec<std::span<const std::uint8_t>>::encode(b, elements);
    } else {
        auto mark = b.body().begin_array(alignment_of(Codec<T>::signature.chars[0]));
        for (const T& e : elements) Codec<T>::encode(b, e);
        if (b.body().end_array(mark) > kMaxArrayLength) b.fail(WireError::ArrayTooLong);
    }
}

template <class T>
struct Codec<std::vector<T>, std::enable_if_t<Codec<T>::supported>> {
    static constexpr bool supported = true;
    static constexpr auto signature = concat(SignatureString<1>{"a"}, Codec<T>::signature);
    static void encode(MessageBuilder& b, const std::vector<T>& v) {
        if constexpr (std::is_same_v<T, bool>) {
            // std::vector<bool> is not contiguous.
            auto mark = b.body().begin_array(4);
            for (const bool e : v) Codec<bool>::encode(b, e);
            if (b.body().end_array(mark) > kMaxArrayLength) b.fail(WireError::ArrayTooLong);
        } else {
            encode_array<T>(b, v);
        }
    }
    static bool decode(MessageReader& r, std::vector<T>& v) {
        v.clear();
        if constexpr (std::is_same_v<T, std::uint8_t>) {
            std::span<const std::uint8_t> bytes;
            if (!Codec<std::span<const std::uint8_t>>::decode(r, bytes)) return false;
            v.assign(bytes.begin(), bytes.end());
            return true;
        } else {
            return decode_array<T>(r, [&] {
                T element{};
                if (!Codec<T>::decode(r, element)) return false;
                v.push_back(std::move(element));
                return true;
            });
        }
    }
};

// A fixed-length array: the same wire form as std::vector; decoding an array of any other element count
// fails with TypeMismatch (the count is part of the C++ type).
template <class T, std::size_t N>
struct Codec<std::array<T, N>, std::enable_if_t<Codec<T>::supported>> {
    static constexpr bool supported = true;
    static constexpr auto signature = concat(SignatureString<1>{"a"}, Codec<T>::signature);
    static void encode(MessageBuilder& b, const std::array<T, N>& v) { encode_array<T>(b, v); }
    static bool decode(MessageReader& r, std::array<T, N>& v) {
        if constexpr (std::is_same_v<T, std::uint8_t>) {
            std::span<const std::uint8_t> bytes;
            if (!Codec<std::span<const std::uint8_t>>::decode(r, bytes)) return false;
            if (bytes.size() != N) return r.decoder().fail(WireError::TypeMismatch);
            std::copy(bytes.begin(), bytes.end(), v.begin());
            return true;
        } else {
            std::size_t count = 0;
            const bool ok = decode_array<T>(r, [&] {
                if (count == N) return r.decoder().fail(WireError::TypeMismatch);
                return Codec<T>::decode(r, v[count++]);
            });
            if (ok && count != N) return r.decoder().fail(WireError::TypeMismatch);
            return ok;
        }
    }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>, std::enable_if_t<(Codec<Ts>::supported && ...) && sizeof...(Ts) != 0>> {
    static constexpr bool supported = true;
    static constexpr auto signature =
        concat(SignatureString<1>{"("}, Codec<Ts>::signature..., SignatureString<1>{")"});
    static void encode(MessageBuilder& b, const std::tuple<Ts...>& v) {
        b.body().align(8);
        std::apply([&b](const Ts&... fields) { (Codec<Ts>::encode(b, fields), ...); }, v);
    }
    static bool decode(MessageReader& r, std::tuple<Ts...>& v) {
        if (!r.decoder().align(8)) return false;
        return std::apply([&r](Ts&... fields) { return (Codec<Ts>::decode(r, fields) && ...); }, v);
    }
};

template <class Map, class K, class V>
struct MapCodec {
    static constexpr bool supported = true;
    static_assert(Codec<K>::signature.size() == 1 && is_basic_type_code(Codec<K>::signature.chars[0]),
                  "D-Bus dictionary keys must be basic types");
    static constexpr auto signature =
        concat(SignatureString<2>{"a{"}, Codec<K>::signature, Codec<V>::signature, SignatureString<1>{"}"});
    static void encode(MessageBuilder& b, const Map& m) {
        auto mark = b.body().begin_array(8);
        for (const auto& [key, value] : m) {
            b.body().align(8);
            Codec<K>::encode(b, key);
            Codec<V>::encode(b, value);
        }
        if (b.body().end_array(mark) > kMaxArrayLength) b.fail(WireError::ArrayTooLong);
    }
    static bool decode(MessageReader& r, Map& m) {
        m.clear();
        Decoder& d = r.decoder();
        std::uint32_t length;
        if (!d.read_u32(length)) return false;
        if (length > kMaxArrayLength) return d.fail(WireError::ArrayTooLong);
        if (!d.align(8)) return false;
        if (length > d.remaining()) return d.fail(WireError::Truncated);
        const std::size_t end = d.pos() + length;
        while (d.pos() < end) {
            K key{};
            V value{};
            if (!d.align(8) || !Codec<K>::decode(r, key) || !Codec<V>::decode(r, value)) return false;
            m.insert_or_assign(std::move(key), std::move(value));
        }
        if (d.pos() != end) return d.fail(WireError::ArrayLengthMismatch);
        return true;
    }
};

template <class K, class V, class C, class A>
struct Codec<std::map<K, V, C, A>, std::enable_if_t<Codec<K>::supported && Codec<V>::supported>>
    : MapCodec<std::map<K, V, C, A>, K, V> {};
template <class K, class V, class H, class E, class A>
struct Codec<std::unordered_map<K, V, H, E, A>, std::enable_if_t<Codec<K>::supported && Codec<V>::supported>>
    : MapCodec<std::unordered_map<K, V, H, E, A>, K, V> {};

// Enums travel as their underlying integer: an `enum class Mode : std::uint8_t` is a 'y', a plain
// `enum class` an 'i'. Decoding does not check that the integer names an enumerator (D-Bus peers may
// know newer values than this program).
template <class T>
struct Codec<T, std::enable_if_t<std::is_enum_v<T> && Codec<std::underlying_type_t<T>>::supported>> {
    using Underlying = std::underlying_type_t<T>;
    static constexpr bool supported = true;
    static constexpr auto signature = Codec<Underlying>::signature;
    static void encode(MessageBuilder& b, T v) { Codec<Underlying>::encode(b, static_cast<Underlying>(v)); }
    static bool decode(MessageReader& r, T& v) {
        Underlying x{};
        if (!Codec<Underlying>::decode(r, x)) return false;
        v = static_cast<T>(x);
        return true;
    }
};

template <std::size_t N>
constexpr bool all_distinct(const std::array<std::string_view, N>& signatures) {
    for (std::size_t i = 0; i < N; ++i)
        for (std::size_t j = i + 1; j < N; ++j)
            if (signatures[i] == signatures[j]) return false;
    return true;
}

// std::variant<Ts...> is a D-Bus variant ('v') that may hold any of Ts. Encoding writes the held
// alternative's signature; decoding takes the alternative whose signature is the one in the message, and
// fails with TypeMismatch when none is (never reinterpreting the value as another type).
template <class... Ts>
struct Codec<std::variant<Ts...>, std::enable_if_t<(Codec<Ts>::supported && ...) && sizeof...(Ts) != 0>> {
    static_assert(all_distinct(std::array<std::string_view, sizeof...(Ts)>{Codec<Ts>::signature.view()...}),
                  "two alternatives of this std::variant have the same D-Bus signature: decoding could not "
                  "tell them apart");
    static constexpr bool supported = true;
    static constexpr SignatureString<1> signature{"v"};
    static void encode(MessageBuilder& b, const std::variant<Ts...>& v) {
        std::visit(
            [&b](const auto& held) {
                using Held = std::remove_cvref_t<decltype(held)>;
                b.body().put_signature(Codec<Held>::signature.view());
                Codec<Held>::encode(b, held);
            },
            v);
    }
    static bool decode(MessageReader& r, std::variant<Ts...>& v) {
        std::string_view type;
        if (!r.decoder().read_signature(type)) return false;
        return decode_alternative<0>(r, type, v);
    }

private:
    template <std::size_t I>
    static bool decode_alternative(MessageReader& r, std::string_view type, std::variant<Ts...>& v) {
        if constexpr (I == sizeof...(Ts)) {
            return r.decoder().fail(WireError::TypeMismatch);
        } else {
            using Alternative = std::variant_alternative_t<I, std::variant<Ts...>>;
            if (type != Codec<Alternative>::signature.view()) return decode_alternative<I + 1>(r, type, v);
            Alternative value{};
            if (!Codec<Alternative>::decode(r, value)) return false;
            v.template emplace<I>(std::move(value));
            return true;
        }
    }
};

// D-Bus has no null, so std::optional has no mapping; check_marshallable says so by name.
template <class T>
struct Codec<std::optional<T>> {
    static constexpr bool supported = false;
};

// --- Structs described with AFBUS_STRUCT (below): afbus_struct_members(const T*), found by ADL, returns a
// std::tuple of pointers to the members in marshalling order. ---

template <class T>
concept DescribedStruct = requires(const T* p) { afbus_struct_members(p); };

template <class Pointer>
struct MemberOf;
template <class Class, class Member>
struct MemberOf<Member Class::*> {
    using type = Member;
};

template <class T, class Pointers>
struct StructCodec;
template <class T, class... Pointers>
struct StructCodec<T, std::tuple<Pointers...>> {
    static constexpr bool members_supported = (Codec<typename MemberOf<Pointers>::type>::supported && ...);
};

template <class T>
constexpr bool struct_members_supported() {
    if constexpr (DescribedStruct<T>) {
        using Pointers = decltype(afbus_struct_members(static_cast<const T*>(nullptr)));
        return StructCodec<T, Pointers>::members_supported;
    } else {
        return false;
    }
}

template <class T>
struct Codec<T, std::enable_if_t<struct_members_supported<T>()>> {
    using Pointers = decltype(afbus_struct_members(static_cast<const T*>(nullptr)));
    static constexpr bool supported = true;
    static constexpr auto signature = []<class... Ps>(std::tuple<Ps...>*) {
        return concat(SignatureString<1>{"("}, Codec<typename MemberOf<Ps>::type>::signature...,
                      SignatureString<1>{")"});
    }(static_cast<Pointers*>(nullptr));
    static void encode(MessageBuilder& b, const T& v) {
        b.body().align(8);
        std::apply([&](auto... member) { (encode_member(b, v.*member), ...); },
                   afbus_struct_members(static_cast<const T*>(nullptr)));
    }
    static bool decode(MessageReader& r, T& v) {
        if (!r.decoder().align(8)) return false;
        return std::apply([&](auto... member) { return (decode_member(r, v.*member) && ...); },
                          afbus_struct_members(static_cast<const T*>(nullptr)));
    }

private:
    template <class M>
    static void encode_member(MessageBuilder& b, const M& m) {
        Codec<M>::encode(b, m);
    }
    template <class M>
    static bool decode_member(MessageReader& r, M& m) {
        return Codec<M>::decode(r, m);
    }
};

template <class T>
inline constexpr bool dependent_false = false;

template <class T>
constexpr bool check_marshallable();

// The element types of the standard containers that have a mapping, for check_marshallable's descent.
template <class T>
struct ElementsOf {
    static constexpr bool is_container = false;
};
template <class... Ts>
struct ElementsOf<std::tuple<Ts...>> {
    static constexpr bool is_container = true;
    static constexpr bool check() { return (check_marshallable<Ts>() && ...); }
};
template <class... Ts>
struct ElementsOf<std::variant<Ts...>> : ElementsOf<std::tuple<Ts...>> {};
template <class T, class A>
struct ElementsOf<std::vector<T, A>> : ElementsOf<std::tuple<T>> {};
template <class T, std::size_t N>
struct ElementsOf<std::array<T, N>> : ElementsOf<std::tuple<T>> {};
template <class K, class V, class C, class A>
struct ElementsOf<std::map<K, V, C, A>> : ElementsOf<std::tuple<K, V>> {};
template <class K, class V, class H, class E, class A>
struct ElementsOf<std::unordered_map<K, V, H, E, A>> : ElementsOf<std::tuple<K, V>> {};

template <class T>
struct IsStdVariant : std::false_type {};
template <class... Ts>
struct IsStdVariant<std::variant<Ts...>> : std::true_type {};

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

// true, or a compile error naming the innermost C++ type without a D-Bus mapping (the compiler prints
// "check_marshallable() [with T = ...]" above the message). append, read and Variant use it.
template <class T>
constexpr bool check_marshallable() {
    using U = std::remove_cvref_t<T>;
    if constexpr (DBusType<U>) {
        return true;
    } else if constexpr (IsOptional<U>::value) {
        static_assert(dependent_false<U>,
                      "std::optional has no D-Bus representation (D-Bus has no null value): use a "
                      "std::variant, an empty array or a separate flag");
        return false;
    } else if constexpr (ElementsOf<U>::is_container) {
        return ElementsOf<U>::check();
    } else if constexpr (std::is_enum_v<U>) {
        return check_marshallable<std::underlying_type_t<U>>();
    } else if constexpr (DescribedStruct<U>) {
        return []<class... Ps>(std::tuple<Ps...>*) {
            return (check_marshallable<typename MemberOf<Ps>::type>() && ...);
        }(static_cast<decltype(afbus_struct_members(static_cast<const U*>(nullptr)))*>(nullptr));
    } else {
        static_assert(dependent_false<U>,
                      "this C++ type has no D-Bus mapping: see the list in afbus/types.hpp; describe a "
                      "struct with AFBUS_STRUCT(Type, members...)");
        return false;
    }
}

// Appending a string literal or const char* marshals a string.
template <std::size_t N>
struct Codec<char[N]> : StringCodec<std::string> {};
template <>
struct Codec<const char*> : StringCodec<std::string> {};

}  // namespace detail

// The D-Bus signature of T, at compile time: signature_of<std::map<std::string, Variant>> == "a{sv}".
template <class T>
    requires detail::DBusType<T>
inline constexpr std::string_view signature_of = detail::Codec<std::remove_cvref_t<T>>::signature.view();

template <class... Ts>
inline constexpr auto signature_of_all = detail::concat(detail::Codec<std::remove_cvref_t<Ts>>::signature...);

// Appends typed values to a message body.
template <class... Ts>
MessageBuilder& append(MessageBuilder& builder, const Ts&... values) {
    static_assert((detail::check_marshallable<Ts>() && ...));
    constexpr auto sig = signature_of_all<Ts...>;
    builder.append_signature(sig.view());
    (detail::Codec<std::remove_cvref_t<Ts>>::encode(builder, values), ...);
    return builder;
}

// Reads typed values from the current position; fails with TypeMismatch (reading nothing) when the
// message's next types are not exactly the signature of Ts.
template <class... Ts>
Expected<void, WireError> read(MessageReader& reader, Ts&... out) {
    static_assert((detail::check_marshallable<Ts>() && ...));
    constexpr auto sig = signature_of_all<Ts...>;
    const std::string_view rest = reader.remaining_signature();
    if (rest.size() < sig.size()) return Unexpected(WireError::NotEnoughArguments);
    if (rest.substr(0, sig.size()) != sig.view()) return Unexpected(WireError::TypeMismatch);
    // The prefix must end on a complete-type boundary ("a" of "ai" is not an array of anything).
    std::size_t at = 0;
    while (at < sig.size()) at += complete_type_length(rest.substr(at));
    if (at != sig.size()) return Unexpected(WireError::TypeMismatch);
    const bool ok = (detail::Codec<std::remove_cvref_t<Ts>>::decode(reader, out) && ...);
    if (!ok) return Unexpected(reader.decoder().error());
    reader.advance_signature(sig.size());
    return {};
}

// Reads the whole remaining body as exactly Ts.
template <class... Ts>
Expected<std::tuple<Ts...>, WireError> read_all(const Message& message) {
    MessageReader reader(message);
    std::tuple<Ts...> values;
    auto r = std::apply([&reader](Ts&... out) { return read(reader, out...); }, values);
    if (!r) return Unexpected(r.error());
    if (!reader.at_end()) return Unexpected(WireError::TypeMismatch);
    return values;
}

// --- Variant conversions, through a scratch message body (alignment starts at 0 in both) ---

template <class T>
    requires(!std::is_same_v<std::remove_cvref_t<T>, Value> && !std::is_same_v<std::remove_cvref_t<T>, Variant>)
Variant::Variant(const T& typed) {
    static_assert(detail::check_marshallable<T>());
    static_assert(!std::is_same_v<std::remove_cvref_t<T>, UnixFd>, "a Variant cannot own an fd; append UnixFd");
    auto builder = MessageBuilder::method_return("", 1);
    append(builder, typed);
    auto message = std::move(builder).build(1);
    if (message) {
        auto v = message->reader().read_value();
        // A std::variant is already a 'v': the Variant holds the alternative, not a variant in a variant.
        if (v && detail::IsStdVariant<std::remove_cvref_t<T>>::value) value_ = v->children().front();
        else if (v) value_ = std::move(*v);
    }
}

template <class T>
Expected<T, WireError> Variant::get() const {
    auto builder = MessageBuilder::method_return("", 1);
    if constexpr (detail::IsStdVariant<T>::value) {
        // The std::variant's decoding picks the alternative of this value's type (or fails).
        append(builder, *this);
    } else {
        if (value_.type() != signature_of<T>) return Unexpected(WireError::TypeMismatch);
        builder.append_value(value_);
    }
    auto message = std::move(builder).build(1);
    if (!message) return Unexpected(message.error());
    auto values = read_all<T>(*message);
    if (!values) return Unexpected(values.error());
    return std::get<0>(std::move(*values));
}

}  // namespace afbus

// AFBUS_STRUCT(Type, member, ...): Type marshals as a D-Bus struct of the listed members, in that order
// (C++20 has no reflection, so the members are named once, here). Write it at namespace scope in Type's
// own namespace, after Type's definition; the members must be public, and Type default-constructible
// (reading fills a default-constructed value). Members not listed are not marshalled.
//
//   struct Point { std::int32_t x; std::int32_t y; std::string label; };
//   AFBUS_STRUCT(Point, x, y, label);   // signature_of<Point> == "(iis)"
//
// It defines afbus_struct_members(const Type*), the member pointers, which the codec finds by
// argument-dependent lookup, and afbus_struct_member_names(const Type*), the members' names as written
// (Proxy::get_all<Type> fills members from the properties of the same names).
#define AFBUS_STRUCT(Type, ...)                                                                         \
    constexpr auto afbus_struct_members(const Type*) noexcept {                                        \
        return ::std::make_tuple(AFBUS_DETAIL_FOR_EACH(AFBUS_DETAIL_MEMBER_POINTER, Type, __VA_ARGS__)); \
    }                                                                                                   \
    constexpr auto afbus_struct_member_names(const Type*) noexcept {                                   \
        return ::std::to_array<::std::string_view>(                                                     \
            {AFBUS_DETAIL_FOR_EACH(AFBUS_DETAIL_MEMBER_NAME, Type, __VA_ARGS__)});                      \
    }                                                                                                   \
    static_assert(::std::is_default_constructible_v<Type>,                                             \
                  "AFBUS_STRUCT: the type must be default-constructible (reading fills a default one)")

#define AFBUS_DETAIL_MEMBER_POINTER(Type, member) &Type::member
#define AFBUS_DETAIL_MEMBER_NAME(Type, member) #member

// Expands to "F(Type, a), F(Type, b), ..." (up to 65 members: AFBUS_DETAIL_EXPAND rescans 4 * 4 * 4
// times, one member each).
#define AFBUS_DETAIL_FOR_EACH(F, Type, first, ...) \
    F(Type, first) __VA_OPT__(AFBUS_DETAIL_EXPAND(AFBUS_DETAIL_FOR_EACH_MORE(F, Type, __VA_ARGS__)))
#define AFBUS_DETAIL_FOR_EACH_MORE(F, Type, next, ...) \
    , F(Type, next) __VA_OPT__(AFBUS_DETAIL_FOR_EACH_AGAIN AFBUS_DETAIL_PARENS(F, Type, __VA_ARGS__))
#define AFBUS_DETAIL_FOR_EACH_AGAIN() AFBUS_DETAIL_FOR_EACH_MORE
#define AFBUS_DETAIL_PARENS ()
#define AFBUS_DETAIL_EXPAND(...) \
    AFBUS_DETAIL_EXPAND3(AFBUS_DETAIL_EXPAND3(AFBUS_DETAIL_EXPAND3(AFBUS_DETAIL_EXPAND3(__VA_ARGS__))))
#define AFBUS_DETAIL_EXPAND3(...) \
    AFBUS_DETAIL_EXPAND2(AFBUS_DETAIL_EXPAND2(AFBUS_DETAIL_EXPAND2(AFBUS_DETAIL_EXPAND2(__VA_ARGS__))))
#define AFBUS_DETAIL_EXPAND2(...) \
    AFBUS_DETAIL_EXPAND1(AFBUS_DETAIL_EXPAND1(AFBUS_DETAIL_EXPAND1(AFBUS_DETAIL_EXPAND1(__VA_ARGS__))))
#define AFBUS_DETAIL_EXPAND1(...) __VA_ARGS__
