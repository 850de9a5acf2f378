// Random valid D-Bus messages for the differential tests (test_libdbus_crosscheck against libdbus,
// test_dbus_header_differential against the kernel's C header parser): a seeded Generator of types,
// values and names, a message as Parts, and afbus marshalling of Parts in either byte order.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "afbus/message.hpp"
#include "afbus/names.hpp"
#include "afbus/signature.hpp"
#include "afbus/types.hpp"

namespace afbus::testgen {

// A seed or a count a run may override from the environment (AFBUS_DIFF_SEED, AFBUS_CROSSCHECK_COUNT...), so
// that a failure found with other values can be reproduced.
inline std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v ? std::strtoull(v, nullptr, 0) : fallback;
}

// ---------------------------------------------------------------------------------------------------
// Random types and values.

class Generator {
public:
    explicit Generator(std::uint64_t seed) : rng_(seed) {}

    std::uint64_t next(std::uint64_t bound) { return std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(rng_); }
    bool chance(int percent) { return next(100) < static_cast<std::uint64_t>(percent); }

    // A message body signature: a few complete types, sometimes one that reaches the nesting limits.
    std::string body_signature() {
        std::string sig;
        if (chance(4)) {
            // The deepest the specification allows: 32 arrays and 32 structs, interleaved.
            for (int i = 0; i < 32; ++i) sig += "a(";
            sig += basic_code();
            for (int i = 0; i < 32; ++i) sig += ')';
            return sig;
        }
        const int count = static_cast<int>(next(6));
        for (int i = 0; i < count; ++i) {
            std::string t = type(0, 0, 200 - static_cast<int>(sig.size()));
            if (sig.size() + t.size() > kMaxSignatureLength) break;
            sig += t;
        }
        return sig;
    }

    // One complete type within `budget` characters and the nesting limits.
    std::string type(int arrays, int structs, int budget) {
        const int roll = static_cast<int>(next(100));
        if (budget < 6 || roll < 50) return std::string(1, roll < 5 && budget >= 1 ? 'v' : basic_code());
        if (roll < 68 && arrays < kMaxArrayNesting) return "a" + type(arrays + 1, structs, budget - 1);
        if (roll < 80 && arrays < kMaxArrayNesting && structs < kMaxStructNesting)
            return "a{" + std::string(1, basic_code()) + type(arrays + 1, structs + 1, budget - 4) + "}";
        if (roll < 95 && structs < kMaxStructNesting) {
            std::string s = "(";
            const int fields = 1 + static_cast<int>(next(4));
            for (int i = 0; i < fields; ++i) {
                const int left = budget - static_cast<int>(s.size()) - 1;
                if (i > 0 && left < 3) break;
                s += type(arrays, structs + 1, left);
            }
            return s + ")";
        }
        return "v";
    }

    char basic_code() {
        // 'h' is left out: dbus_message_demarshal cannot take the fds a message with UNIX_FDS needs.
        static constexpr char kCodes[] = "ybnqiuxtdsog";
        return kCodes[next(sizeof kCodes - 1)];
    }

    // A value of `type`; `depth` counts enclosing containers so variants stay within the total of 64.
    Value value(std::string_view type, int depth, int& budget) {
        --budget;
        switch (type[0]) {
            case 'y': return Value::byte(static_cast<std::uint8_t>(next(256)));
            case 'b': return Value::boolean(chance(50));
            case 'n': return Value::int16(static_cast<std::int16_t>(next(65536)));
            case 'q': return Value::uint16(static_cast<std::uint16_t>(next(65536)));
            case 'i': return Value::int32(static_cast<std::int32_t>(rng_()));
            case 'u': return Value::uint32(static_cast<std::uint32_t>(rng_()));
            case 'x': return Value::int64(static_cast<std::int64_t>(rng_()));
            case 't': return Value::uint64(rng_());
            case 'd': {
                // Any bit pattern but NaN (NaN != NaN would fail the comparison, not the wire format).
                double d;
                do d = std::bit_cast<double>(rng_()); while (d != d);
                return Value::float64(d);
            }
            case 's': return Value::string(utf8_string());
            case 'o': return Value::object_path(object_path());
            case 'g': return Value::signature(chance(20) ? std::string() : body_signature());
            case 'v': {
                if (depth + 1 >= kMaxTotalNesting || budget <= 0) return Value::variant(Value::byte(1));
                const std::string inner = type_for_depth(kMaxTotalNesting - depth - 1);
                return Value::variant(value(inner, depth + 1, budget));
            }
            case 'a': {
                const std::string element(type.substr(1, complete_type_length(type.substr(1))));
                std::vector<Value> elements;
                const int n = budget > 0 ? static_cast<int>(next(chance(10) ? 40 : 4)) : 0;
                for (int i = 0; i < n && budget > 0; ++i) elements.push_back(value(element, depth + 1, budget));
                return Value::array(element, std::move(elements));
            }
            case '{': {
                const std::string_view inner = type.substr(1);
                Value key = value(inner.substr(0, 1), depth + 1, budget);
                Value val = value(inner.substr(1), depth + 1, budget);
                return Value::dict_entry(std::move(key), std::move(val));
            }
            case '(': {
                std::vector<Value> fields;
                std::size_t at = 1;
                while (type[at] != ')') {
                    const std::size_t n = complete_type_length(type.substr(at));
                    fields.push_back(value(type.substr(at, n), depth + 1, budget));
                    at += n;
                }
                return Value::structure(std::move(fields));
            }
        }
        ADD_FAILURE() << "unexpected type " << type;
        return Value::byte(0);
    }

    // A type for a variant whose contents may nest at most `max_depth` containers.
    std::string type_for_depth(int max_depth) {
        for (;;) {
            std::string t = type(0, 0, 40);
            if (container_depth(t) <= max_depth) return t;
        }
    }

    static int container_depth(std::string_view t) {
        int depth = 0, max = 0;
        for (char c : t) {
            if (c == 'a' || c == '(' || c == '{') max = std::max(max, ++depth);
            if (c == ')' || c == '}') --depth;
            if (c != 'a' && c != '(' && c != '{') {
                // an array's depth ends with its element type
            }
        }
        return std::max(max, 0);
    }

    std::string utf8_string() {
        std::string s;
        const int n = static_cast<int>(next(chance(5) ? 300 : 12));
        for (int i = 0; i < n; ++i) {
            std::uint32_t cp;
            switch (next(5)) {
                case 0: cp = 1 + static_cast<std::uint32_t>(next(0x7f)); break;
                case 1: cp = 0x80 + static_cast<std::uint32_t>(next(0x800 - 0x80)); break;
                case 2:
                    do cp = 0x800 + static_cast<std::uint32_t>(next(0x10000 - 0x800));
                    while (cp >= 0xd800 && cp <= 0xdfff);
                    break;
                case 3: cp = 0x10000 + static_cast<std::uint32_t>(next(0x110000 - 0x10000)); break;
                default: cp = 'a' + static_cast<std::uint32_t>(next(26)); break;
            }
            append_utf8(s, cp);
        }
        return s;
    }

    static void append_utf8(std::string& s, std::uint32_t cp) {
        if (cp < 0x80) {
            s += static_cast<char>(cp);
        } else if (cp < 0x800) {
            s += static_cast<char>(0xc0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            s += static_cast<char>(0xe0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            s += static_cast<char>(0xf0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    std::string element_name(bool allow_digit_first) {
        static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789";
        std::string e;
        const int n = 1 + static_cast<int>(next(10));
        for (int i = 0; i < n; ++i) {
            char c;
            do c = kChars[next(sizeof kChars - 1)];
            while (i == 0 && !allow_digit_first && c >= '0' && c <= '9');
            e += c;
        }
        return e;
    }

    std::string object_path() {
        if (chance(10)) return "/";
        std::string p;
        const int n = 1 + static_cast<int>(next(5));
        for (int i = 0; i < n; ++i) p += "/" + element_name(true);
        return p;
    }

    std::string dotted_name() {
        std::string name = element_name(false);
        const int n = 1 + static_cast<int>(next(4));
        for (int i = 0; i < n; ++i) name.append(".").append(element_name(false));
        return name;
    }

    std::string bus_name() {
        if (chance(30)) return ":" + std::to_string(next(100)) + "." + std::to_string(next(100000));
        return dotted_name();
    }

private:
    std::mt19937_64 rng_;
};

// ---------------------------------------------------------------------------------------------------
// A random message as parts, so both implementations can build it.

struct Parts {
    MessageType type = MessageType::MethodCall;
    std::uint8_t flags = 0;
    std::uint32_t serial = 1;
    std::string path, interface, member, error_name, destination, sender;
    std::uint32_t reply_serial = 0;
    std::vector<Value> body;

    std::string signature() const {
        std::string s;
        for (const Value& v : body) s += v.type();
        return s;
    }
};

inline Parts random_parts(Generator& g) {
    Parts p;
    p.type = static_cast<MessageType>(1 + g.next(4));
    p.flags = static_cast<std::uint8_t>(g.next(8));
    p.serial = static_cast<std::uint32_t>(1 + g.next(0xfffffffe));
    if (p.type == MessageType::MethodCall || p.type == MessageType::Signal) {
        p.path = g.object_path();
        p.member = g.element_name(false);
        if (p.type == MessageType::Signal || g.chance(70)) p.interface = g.dotted_name();
    } else {
        p.reply_serial = static_cast<std::uint32_t>(1 + g.next(0xfffffffe));
        if (p.type == MessageType::Error) p.error_name = g.dotted_name();
    }
    if (p.type != MessageType::Signal || g.chance(30)) {
        if (g.chance(80)) p.destination = g.bus_name();
    }
    if (g.chance(50)) p.sender = g.bus_name();
    const std::string sig = g.body_signature();
    int budget = 400;
    std::size_t at = 0;
    while (at < sig.size()) {
        const std::size_t n = complete_type_length(std::string_view(sig).substr(at));
        p.body.push_back(g.value(std::string_view(sig).substr(at, n), 0, budget));
        at += n;
    }
    return p;
}

// Writes a value without any of encode_value's checks, so that the invalid corpus can hold invalid strings,
// paths and signatures.
inline void raw_encode(Encoder& e, const Value& v) {
    const char code = v.type()[0];
    switch (code) {
        case 'y': e.put_u8(*v.get_if<std::uint8_t>()); return;
        case 'b': e.put_u32(*v.get_if<bool>() ? 1 : 0); return;
        case 'n': e.put_u16(static_cast<std::uint16_t>(*v.get_if<std::int16_t>())); return;
        case 'q': e.put_u16(*v.get_if<std::uint16_t>()); return;
        case 'i': e.put_u32(static_cast<std::uint32_t>(*v.get_if<std::int32_t>())); return;
        case 'u': case 'h': e.put_u32(*v.get_if<std::uint32_t>()); return;
        case 'x': e.put_u64(static_cast<std::uint64_t>(*v.get_if<std::int64_t>())); return;
        case 't': e.put_u64(*v.get_if<std::uint64_t>()); return;
        case 'd': e.put_double(*v.get_if<double>()); return;
        case 's': case 'o': e.put_string(v.text()); return;
        case 'g': e.put_signature(v.text()); return;
        case 'v':
            e.put_signature(v.children()[0].type());
            raw_encode(e, v.children()[0]);
            return;
        case 'a': {
            auto mark = e.begin_array(alignment_of(v.type()[1]));
            for (const Value& c : v.children()) raw_encode(e, c);
            e.end_array(mark);
            return;
        }
        default:
            e.align(8);
            for (const Value& c : v.children()) raw_encode(e, c);
    }
}

// afbus marshalling in either byte order (MessageBuilder only writes native order, so the header is
// assembled here with the same Encoder and encode_value the builder uses).
// `extra` header fields (any code and value) follow the known ones.
inline std::vector<std::byte> afbus_marshal(const Parts& p, Endian endian, bool checked = true,
                                            const std::vector<std::pair<std::uint8_t, Value>>& extra = {}) {
    const bool swap = endian != native_endian();
    Encoder body(swap);
    auto encode = [checked](Encoder& e, const Value& v) {
        if (checked) EXPECT_TRUE(encode_value(e, v));
        else raw_encode(e, v);
    };
    for (const Value& v : p.body) encode(body, v);
    Encoder h(swap);
    h.put_u8(static_cast<std::uint8_t>(endian));
    h.put_u8(static_cast<std::uint8_t>(p.type));
    h.put_u8(p.flags);
    h.put_u8(1);
    h.put_u32(static_cast<std::uint32_t>(body.size()));
    h.put_u32(p.serial);
    auto mark = h.begin_array(8);
    auto field = [&h, &encode](HeaderField code, const Value& v) {
        h.align(8);
        h.put_u8(static_cast<std::uint8_t>(code));
        h.put_signature(v.type());
        encode(h, v);
    };
    if (!p.path.empty()) field(HeaderField::Path, Value::object_path(p.path));
    if (!p.interface.empty()) field(HeaderField::Interface, Value::string(p.interface));
    if (!p.member.empty()) field(HeaderField::Member, Value::string(p.member));
    if (!p.error_name.empty()) field(HeaderField::ErrorName, Value::string(p.error_name));
    if (p.reply_serial) field(HeaderField::ReplySerial, Value::uint32(p.reply_serial));
    if (!p.destination.empty()) field(HeaderField::Destination, Value::string(p.destination));
    if (!p.sender.empty()) field(HeaderField::Sender, Value::string(p.sender));
    if (!p.signature().empty()) field(HeaderField::Signature, Value::signature(p.signature()));
    for (const auto& [code, value] : extra) field(static_cast<HeaderField>(code), value);
    h.end_array(mark);
    h.align(8);
    std::vector<std::byte> out = std::move(h).take();
    out.insert(out.end(), body.buffer().begin(), body.buffer().end());
    return out;
}

}  // namespace afbus::testgen
