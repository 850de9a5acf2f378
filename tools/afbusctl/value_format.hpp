// How busctl prints message bodies: its one-line form ("as 2 \"a\" \"b\"": the signature, then each value
// with arrays as a count followed by their elements and variants as their signature followed by their
// value; strings C-escaped) and its JSON form ({"type":"as","data":[["a","b"]]}).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/value.hpp"

namespace afbusctl {

enum class JsonMode { Off, Short, Pretty };

// "s \"hello\"" for a body of signature "s"; no trailing newline.
std::string format_body_line(std::string_view signature, const std::vector<afbus::Value>& values);
// One value in the same form, without its signature (a property's value after its signature).
std::string format_value_words(const afbus::Value& value);

// C escaping as busctl does it for strings: \a \b \f \n \r \t \v \\ \" \' and \ooo for the other bytes
// below 0x20 and from 0x7f up.
std::string c_escape(std::string_view text);

// A JSON document; only what busctl's output needs.
class Json {
public:
    enum class Kind { Null, Boolean, Integer, Unsigned, Double, String, Array, Object };
    static Json null() { return Json(Kind::Null); }
    static Json boolean(bool v);
    static Json integer(long long v);
    static Json unsigned_integer(unsigned long long v);
    static Json floating(double v);
    static Json string(std::string v);
    static Json array(std::vector<Json> elements = {});
    static Json object(std::vector<std::pair<std::string, Json>> members = {});

    void push_back(Json element) { elements_.push_back(std::move(element)); }
    void add(std::string key, Json value) { members_.emplace_back(std::move(key), std::move(value)); }

    // Short: no blanks. Pretty: tab indentation and " : ", as sd-json prints. No trailing newline.
    [[nodiscard]] std::string dump(JsonMode mode) const;

private:
    explicit Json(Kind kind) : kind_(kind) {}
    void dump_to(std::string& out, bool pretty, int depth) const;

    Kind kind_;
    bool boolean_ = false;
    long long integer_ = 0;
    unsigned long long unsigned_ = 0;
    double double_ = 0;
    std::string string_;
    std::vector<Json> elements_;
    std::vector<std::pair<std::string, Json>> members_;
};

// A value as busctl's JSON has it: numbers, strings, arrays; dictionaries as objects (their keys must be
// strings, object paths or signatures); variants and whole bodies as {"type":..., "data":...}.
afbus::Expected<Json, std::string> value_to_json(const afbus::Value& value);
// {"type": signature, "data": [values...]}, what `call --json` prints.
afbus::Expected<Json, std::string> body_to_json(std::string_view signature, const std::vector<afbus::Value>& values);

}  // namespace afbusctl
