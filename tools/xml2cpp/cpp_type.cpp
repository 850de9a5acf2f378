#include "cpp_type.hpp"

#include "afbus/signature.hpp"
#include "afbus/wire_error.hpp"

namespace xml2cpp {

using afbus::Unexpected;

namespace {

// A recursive descent over one signature; `at` is the next character. Errors say where (1-based), since
// a long struct signature is hard to read by eye.
class TypeReader {
public:
    explicit TypeReader(std::string_view signature) : signature_(signature) {}

    [[nodiscard]] bool at_end() const noexcept { return at_ >= signature_.size(); }
    [[nodiscard]] std::size_t position() const noexcept { return at_; }

    // Reads one single complete type and returns its C++ type.
    afbus::Expected<std::string, std::string> read_complete_type() {
        if (at_end()) return Unexpected(std::string("a type is missing at the end"));
        const char code = signature_[at_++];
        if (const char* basic = basic_type(code)) return std::string(basic);
        switch (code) {
            case 'v':
                return std::string("afbus::Variant");
            case 'a':
                if (!at_end() && signature_[at_] == '{') return read_dict_entry();
                return wrap("std::vector<", read_complete_type(), ">");
            case '(':
                return read_struct();
            case ')':
                return fail("')' closes a struct that was not opened");
            case '{':
                return fail("'{' outside an array: a dict entry is only valid as 'a{...}'");
            case '}':
                return fail("'}' closes a dict entry that was not opened");
            default:
                return fail(std::string("'") + code + "' is not a D-Bus type code");
        }
    }

private:
    static const char* basic_type(char code) noexcept {
        switch (code) {
            case 'y':
                return "std::uint8_t";
            case 'b':
                return "bool";
            case 'n':
                return "std::int16_t";
            case 'q':
                return "std::uint16_t";
            case 'i':
                return "std::int32_t";
            case 'u':
                return "std::uint32_t";
            case 'x':
                return "std::int64_t";
            case 't':
                return "std::uint64_t";
            case 'd':
                return "double";
            case 's':
                return "std::string";
            case 'o':
                return "afbus::ObjectPath";
            case 'g':
                return "afbus::Signature";
            case 'h':
                return "afbus::UnixFd";
            default:
                return nullptr;
        }
    }
    static bool is_basic(char code) noexcept { return basic_type(code) != nullptr; }

    afbus::Expected<std::string, std::string> fail(std::string reason) const {
        return Unexpected("character " + std::to_string(at_) + ": " + reason);
    }

    static afbus::Expected<std::string, std::string> wrap(const char* before,
                                                          afbus::Expected<std::string, std::string> inner,
                                                          const char* after) {
        if (!inner) return inner;
        return before + *inner + after;
    }

    afbus::Expected<std::string, std::string> read_dict_entry() {
        ++at_;  // '{'
        if (at_end()) return fail("a dict entry is not closed");
        if (!is_basic(signature_[at_])) {
            ++at_;
            return fail("a dict entry's key must be a basic type, not '" +
                        std::string(1, signature_[at_ - 1]) + "'");
        }
        auto key = read_complete_type();
        if (!key) return key;
        if (at_end() || signature_[at_] == '}') return fail("a dict entry has a key but no value");
        auto value = read_complete_type();
        if (!value) return value;
        if (at_end()) return fail("a dict entry is not closed");
        if (signature_[at_] != '}') {
            ++at_;
            return fail("a dict entry holds exactly one key and one value");
        }
        ++at_;
        return "std::map<" + *key + ", " + *value + ">";
    }

    afbus::Expected<std::string, std::string> read_struct() {
        std::string members;
        while (!at_end() && signature_[at_] != ')') {
            auto member = read_complete_type();
            if (!member) return member;
            if (!members.empty()) members += ", ";
            members += *member;
        }
        if (at_end()) return fail("a struct is not closed");
        ++at_;  // ')'
        if (members.empty()) return fail("a struct must have at least one member");
        return "std::tuple<" + members + ">";
    }

    std::string_view signature_;
    std::size_t at_ = 0;
};

}  // namespace

afbus::Expected<std::vector<std::string>, std::string> split_signature(std::string_view signature) {
    std::vector<std::string> types;
    TypeReader reader(signature);
    while (!reader.at_end()) {
        const std::size_t start = reader.position();
        auto type = reader.read_complete_type();
        if (!type) return Unexpected(std::move(type).error());
        types.emplace_back(signature.substr(start, reader.position() - start));
    }
    // What the grammar above does not see: the length and nesting limits.
    if (auto valid = afbus::validate_signature(signature); !valid) {
        return Unexpected(std::string(afbus::to_string(valid.error())));
    }
    return types;
}

afbus::Expected<std::string, std::string> cpp_type(std::string_view type) {
    if (type.empty()) return Unexpected(std::string("the type is empty"));
    TypeReader reader(type);
    auto mapped = reader.read_complete_type();
    if (!mapped) return mapped;
    if (!reader.at_end()) {
        return Unexpected("'" + std::string(type) + "' is more than one type (the first ends at character " +
                          std::to_string(reader.position()) + ")");
    }
    if (auto valid = afbus::validate_signature(type); !valid) {
        return Unexpected(std::string(afbus::to_string(valid.error())));
    }
    return mapped;
}

}  // namespace xml2cpp
