// afbus::Value — one D-Bus value of any type, built at run time: what a variant holds, what a generic tool
// (afbusctl, a monitor) prints, and what the libdbus cross-check compares. Typed code should use C++ types
// directly (afbus/types.hpp); Value is the dynamic escape hatch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "afbus/decoder.hpp"
#include "afbus/encoder.hpp"
#include "afbus/expected.hpp"

namespace afbus {

class Value {
public:
    // Scalars keep their own C++ type; 's', 'o' and 'g' are text; arrays, structs, dict entries and variants
    // hold their children (a variant exactly one). 'h' holds the fd's index in its message's fd list.
    using Storage = std::variant<std::monostate, bool, std::uint8_t, std::int16_t, std::uint16_t, std::int32_t,
                                 std::uint32_t, std::int64_t, std::uint64_t, double, std::string,
                                 std::vector<Value>>;

    Value() = default;
    Value(std::string type, Storage data) : type_(std::move(type)), data_(std::move(data)) {}

    static Value byte(std::uint8_t v) { return {"y", v}; }
    static Value boolean(bool v) { return {"b", v}; }
    static Value int16(std::int16_t v) { return {"n", v}; }
    static Value uint16(std::uint16_t v) { return {"q", v}; }
    static Value int32(std::int32_t v) { return {"i", v}; }
    static Value uint32(std::uint32_t v) { return {"u", v}; }
    static Value int64(std::int64_t v) { return {"x", v}; }
    static Value uint64(std::uint64_t v) { return {"t", v}; }
    static Value float64(double v) { return {"d", v}; }
    static Value string(std::string v) { return {"s", std::move(v)}; }
    static Value object_path(std::string v) { return {"o", std::move(v)}; }
    static Value signature(std::string v) { return {"g", std::move(v)}; }
    static Value unix_fd_index(std::uint32_t index) { return {"h", index}; }
    static Value array(std::string element_type, std::vector<Value> elements) {
        return {"a" + element_type, std::move(elements)};
    }
    static Value structure(std::vector<Value> fields);
    static Value dict_entry(Value key, Value value);
    static Value variant(Value inner) { return {"v", std::vector<Value>{std::move(inner)}}; }

    // The single complete type of this value, e.g. "a{sv}".
    [[nodiscard]] const std::string& type() const noexcept { return type_; }
    [[nodiscard]] const Storage& data() const noexcept { return data_; }
    [[nodiscard]] const std::vector<Value>& children() const { return std::get<std::vector<Value>>(data_); }
    [[nodiscard]] const std::string& text() const { return std::get<std::string>(data_); }
    template <class T>
    [[nodiscard]] const T* get_if() const noexcept { return std::get_if<T>(&data_); }

    friend bool operator==(const Value&, const Value&) = default;

    // Human-readable form in the style of busctl/GVariant text: 42, "text", [1, 2], (1, "a"), <uint32 5>.
    [[nodiscard]] std::string to_string() const;

private:
    std::string type_;
    Storage data_;
};

// Marshals `value` (checking strings, paths and signatures); the encoder's output stays valid even when
// this fails, but the value may be partly written.
Expected<void, WireError> encode_value(Encoder& encoder, const Value& value);
// Unmarshals one value of the single complete `type` (data assumed validated, but bounds still checked).
Expected<Value, WireError> decode_value(Decoder& decoder, std::string_view type);

}  // namespace afbus
