#include "argument_parser.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <type_traits>

#include "afbus/names.hpp"
#include "afbus/signature.hpp"

namespace afbusctl {

using afbus::Expected;
using afbus::Unexpected;
using afbus::Value;

namespace {

constexpr std::string_view kInvalid = "Invalid argument";
constexpr std::string_view kRange = "Numerical result out of range";

// What busctl calls each type in its messages.
std::string_view type_description(char type) {
    switch (type) {
        case 'y': return "byte (unsigned 8bit integer)";
        case 'b': return "boolean";
        case 'n': return "signed 16bit integer";
        case 'q': return "unsigned 16bit integer";
        case 'i': return "signed 32bit integer";
        case 'u': return "unsigned 32bit integer";
        case 'x': return "signed 64bit integer";
        case 't': return "unsigned 64bit integer";
        case 'd': return "double precision floating point";
        default: return "value";
    }
}

struct ParsedInteger {
    bool negative = false;
    unsigned long long magnitude = 0;
};

// C integer syntax as systemd reads it: optional leading blanks and sign, then 0x/0o/0b/0 prefixes;
// nothing may follow the digits. nullopt: not a number; "range" set when it does not fit 64 bits.
std::optional<ParsedInteger> read_integer(std::string_view word, bool& range) {
    std::size_t at = 0;
    while (at < word.size() && (word[at] == ' ' || word[at] == '\t' || word[at] == '\n')) ++at;
    ParsedInteger out;
    if (at < word.size() && (word[at] == '-' || word[at] == '+')) out.negative = word[at++] == '-';
    unsigned base = 10;
    if (word.size() - at >= 2 && word[at] == '0') {
        const char p = word[at + 1];
        if (p == 'x' || p == 'X') base = 16, at += 2;
        else if (p == 'o' || p == 'O') base = 8, at += 2;
        else if (p == 'b' || p == 'B') base = 2, at += 2;
        else base = 8, at += 1;
    }
    if (at >= word.size()) return std::nullopt;
    for (; at < word.size(); ++at) {
        const char c = word[at];
        unsigned digit;
        if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
        else return std::nullopt;
        if (digit >= base) return std::nullopt;
        if (out.magnitude > (std::numeric_limits<unsigned long long>::max() - digit) / base) range = true;
        else out.magnitude = out.magnitude * base + digit;
    }
    return out;
}

template <class T>
Expected<Value, std::string> integer_value(std::string_view type, const std::string& word) {
    bool range = false;
    auto parsed = read_integer(word, range);
    if (!parsed) return Unexpected(std::string(kInvalid));
    if (range) return Unexpected(std::string(kRange));
    const unsigned long long limit_positive = static_cast<unsigned long long>(std::numeric_limits<T>::max());
    if constexpr (std::is_unsigned_v<T>) {
        if (parsed->negative && parsed->magnitude != 0) return Unexpected(std::string(kRange));
        if (parsed->magnitude > limit_positive) return Unexpected(std::string(kRange));
        return Value(std::string(type), static_cast<T>(parsed->magnitude));
    } else {
        const unsigned long long limit_negative = limit_positive + 1;
        if (parsed->negative) {
            if (parsed->magnitude > limit_negative) return Unexpected(std::string(kRange));
            // -(magnitude) without overflowing: go through magnitude - 1.
            if (parsed->magnitude == 0) return Value(std::string(type), T{0});
            const T v = static_cast<T>(-static_cast<T>(parsed->magnitude - 1) - 1);
            return Value(std::string(type), v);
        }
        if (parsed->magnitude > limit_positive) return Unexpected(std::string(kRange));
        return Value(std::string(type), static_cast<T>(parsed->magnitude));
    }
}

std::optional<bool> read_boolean(std::string_view word) {
    for (std::string_view yes : {"1", "yes", "y", "true", "t", "on"})
        if (word.size() == yes.size() && std::equal(word.begin(), word.end(), yes.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) == b;
            }))
            return true;
    for (std::string_view no : {"0", "no", "n", "false", "f", "off"})
        if (word.size() == no.size() && std::equal(word.begin(), word.end(), no.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) == b;
            }))
            return false;
    return std::nullopt;
}

class WordParser {
public:
    WordParser(std::span<const std::string> words) : words_(words) {}

    // Parses the values of every complete type in `signature`, appending them to `out`.
    Expected<void, ArgumentError> parse_types(std::string_view signature, std::vector<Value>& out) {
        while (!signature.empty()) {
            const std::size_t length = afbus::complete_type_length(signature);
            auto value = parse_one(signature.substr(0, length));
            if (!value) return Unexpected(std::move(value).error());
            out.push_back(std::move(*value));
            signature.remove_prefix(length);
        }
        return {};
    }

    [[nodiscard]] std::size_t position() const { return next_; }

private:
    ArgumentError error(std::string message, std::string_view type, std::size_t word) const {
        return ArgumentError{std::move(message), word, std::string(type)};
    }

    Expected<const std::string*, ArgumentError> take(std::string_view type) {
        if (next_ >= words_.size())
            return Unexpected(error("Too few parameters for signature.", type, words_.size()));
        return &words_[next_++];
    }

    Expected<Value, ArgumentError> parse_one(std::string_view type) {
        const char code = type[0];
        if (afbus::is_basic_type_code(code)) {
            if (code == 'h')
                return Unexpected(error("UNIX file descriptor not supported as type.", type, next_));
            auto word = take(type);
            if (!word) return Unexpected(std::move(word).error());
            auto value = parse_basic(code, **word);
            if (!value) {
                std::string message;
                if (code == 's' || code == 'o' || code == 'g') message = value.error();
                else
                    message = "Failed to parse '" + **word + "' as " + std::string(type_description(code)) + ": " +
                              value.error();
                return Unexpected(error(std::move(message), type, next_ - 1));
            }
            return std::move(*value);
        }
        switch (code) {
            case 'a': return parse_array(type);
            case 'v': return parse_variant();
            case '(':
            case '{': {
                std::vector<Value> fields;
                if (auto r = parse_types(type.substr(1, type.size() - 2), fields); !r)
                    return Unexpected(std::move(r).error());
                if (code == '{') return Value::dict_entry(std::move(fields[0]), std::move(fields[1]));
                return Value::structure(std::move(fields));
            }
            default:
                return Unexpected(error("Invalid signature.", type, next_));
        }
    }

    Expected<Value, ArgumentError> parse_array(std::string_view type) {
        auto word = take(type);
        if (!word) return Unexpected(std::move(word).error());
        auto count = integer_value<std::uint32_t>("u", **word);
        if (!count)
            return Unexpected(error("Failed to parse '" + **word + "' as array size: " + count.error(), type, next_ - 1));
        const std::string_view element = type.substr(1);
        std::vector<Value> elements;
        for (std::uint32_t i = 0; i < *count->get_if<std::uint32_t>(); ++i) {
            auto value = parse_one(element);
            if (!value) return Unexpected(std::move(value).error());
            elements.push_back(std::move(*value));
        }
        return Value::array(std::string(element), std::move(elements));
    }

    Expected<Value, ArgumentError> parse_variant() {
        auto word = take("v");
        if (!word) return Unexpected(std::move(word).error());
        const std::string& inner = **word;
        if (!afbus::validate_single_complete_type(inner))
            return Unexpected(error("Invalid variant signature '" + inner + "': not a single complete type.", "v",
                                    next_ - 1));
        auto value = parse_one(inner);
        if (!value) return Unexpected(std::move(value).error());
        return Value::variant(std::move(*value));
    }

    std::span<const std::string> words_;
    std::size_t next_ = 0;
};

}  // namespace

std::string ArgumentError::describe() const {
    if (type.empty()) {
        if (word == 0) return message;
        return message + " (value #" + std::to_string(word + 1) + " and after are left over)";
    }
    return message + " (value #" + std::to_string(word + 1) + ", of type '" + type + "')";
}

Expected<Value, std::string> parse_basic(char type, const std::string& word) {
    switch (type) {
        case 'y': return integer_value<std::uint8_t>("y", word);
        case 'n': return integer_value<std::int16_t>("n", word);
        case 'q': return integer_value<std::uint16_t>("q", word);
        case 'i': return integer_value<std::int32_t>("i", word);
        case 'u': return integer_value<std::uint32_t>("u", word);
        case 'x': return integer_value<std::int64_t>("x", word);
        case 't': return integer_value<std::uint64_t>("t", word);
        case 'b': {
            auto b = read_boolean(word);
            if (!b) return Unexpected(std::string(kInvalid));
            return Value::boolean(*b);
        }
        case 'd': {
            if (word.empty()) return Unexpected(std::string(kInvalid));
            errno = 0;
            char* end = nullptr;
            const double d = std::strtod(word.c_str(), &end);
            if (end == nullptr || *end != '\0') return Unexpected(std::string(kInvalid));
            if (errno == ERANGE && std::isinf(d)) return Unexpected(std::string(kRange));
            return Value::float64(d);
        }
        case 's':
            if (!afbus::is_valid_utf8(word)) return Unexpected("Invalid string '" + word + "': not valid UTF-8.");
            return Value::string(word);
        case 'o':
            if (!afbus::is_valid_object_path(word)) return Unexpected("Invalid object path '" + word + "'.");
            return Value::object_path(word);
        case 'g':
            if (!afbus::validate_signature(word)) return Unexpected("Invalid signature '" + word + "'.");
            return Value::signature(word);
        default:
            return Unexpected(std::string(kInvalid));
    }
}

Expected<std::vector<Value>, ArgumentError> parse_arguments(std::string_view signature,
                                                           std::span<const std::string> words) {
    if (auto valid = afbus::validate_signature(signature); !valid)
        return Unexpected(ArgumentError{"Invalid signature '" + std::string(signature) + "'.", 0, ""});
    WordParser parser(words);
    std::vector<Value> values;
    if (auto r = parser.parse_types(signature, values); !r) return Unexpected(std::move(r).error());
    if (parser.position() != words.size())
        return Unexpected(ArgumentError{"Too many parameters for signature.", parser.position(), ""});
    return values;
}

}  // namespace afbusctl
