#include "value_format.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>

namespace afbusctl {

using afbus::Expected;
using afbus::Unexpected;
using afbus::Value;

namespace {

void append_words(std::string& out, const Value& v);

void append_separated(std::string& out, const Value& v) {
    out += ' ';
    append_words(out, v);
}

std::string format_double(double d, const char* format) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, d);
    return buffer;
}

void append_words(std::string& out, const Value& v) {
    const std::string& t = v.type();
    switch (t[0]) {
        case 'y': out += std::to_string(*v.get_if<std::uint8_t>()); return;
        case 'b': out += *v.get_if<bool>() ? "true" : "false"; return;
        case 'n': out += std::to_string(*v.get_if<std::int16_t>()); return;
        case 'q': out += std::to_string(*v.get_if<std::uint16_t>()); return;
        case 'i': out += std::to_string(*v.get_if<std::int32_t>()); return;
        case 'u':
        case 'h': out += std::to_string(*v.get_if<std::uint32_t>()); return;
        case 'x': out += std::to_string(*v.get_if<std::int64_t>()); return;
        case 't': out += std::to_string(*v.get_if<std::uint64_t>()); return;
        case 'd': out += format_double(*v.get_if<double>(), "%g"); return;
        case 's':
        case 'o':
        case 'g': out += '"' + c_escape(v.text()) + '"'; return;
        case 'v': {
            const Value& inner = v.children()[0];
            out += inner.type();
            append_separated(out, inner);
            return;
        }
        case 'a': {
            out += std::to_string(v.children().size());
            for (const Value& e : v.children()) append_separated(out, e);
            return;
        }
        case '(':
        case '{': {
            bool first = true;
            for (const Value& f : v.children()) {
                if (!first) out += ' ';
                first = false;
                append_words(out, f);
            }
            return;
        }
        default: out += '?';
    }
}

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                    out += buffer;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

void indent(std::string& out, int depth) { out.append(static_cast<std::size_t>(depth), '\t'); }

}  // namespace

std::string c_escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '\a': out += "\\a"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\v': out += "\\v"; break;
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            case '\'': out += "\\'"; break;
            default: {
                const auto byte = static_cast<unsigned char>(c);
                if (byte < 0x20 || byte >= 0x7f) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof buffer, "\\%03o", static_cast<unsigned>(byte));
                    out += buffer;
                } else {
                    out += c;
                }
            }
        }
    }
    return out;
}

std::string format_value_words(const Value& value) {
    std::string out;
    append_words(out, value);
    return out;
}

std::string format_body_line(std::string_view signature, const std::vector<Value>& values) {
    std::string out(signature);
    for (const Value& v : values) append_separated(out, v);
    return out;
}

Json Json::boolean(bool v) {
    Json j(Kind::Boolean);
    j.boolean_ = v;
    return j;
}
Json Json::integer(long long v) {
    Json j(Kind::Integer);
    j.integer_ = v;
    return j;
}
Json Json::unsigned_integer(unsigned long long v) {
    Json j(Kind::Unsigned);
    j.unsigned_ = v;
    return j;
}
Json Json::floating(double v) {
    Json j(Kind::Double);
    j.double_ = v;
    return j;
}
Json Json::string(std::string v) {
    Json j(Kind::String);
    j.string_ = std::move(v);
    return j;
}
Json Json::array(std::vector<Json> elements) {
    Json j(Kind::Array);
    j.elements_ = std::move(elements);
    return j;
}
Json Json::object(std::vector<std::pair<std::string, Json>> members) {
    Json j(Kind::Object);
    j.members_ = std::move(members);
    return j;
}

std::string Json::dump(JsonMode mode) const {
    std::string out;
    dump_to(out, mode == JsonMode::Pretty, 0);
    return out;
}

void Json::dump_to(std::string& out, bool pretty, int depth) const {
    switch (kind_) {
        case Kind::Null: out += "null"; return;
        case Kind::Boolean: out += boolean_ ? "true" : "false"; return;
        case Kind::Integer: out += std::to_string(integer_); return;
        case Kind::Unsigned: out += std::to_string(unsigned_); return;
        case Kind::Double:
            // sd-json: full precision in exponent form; JSON has no spelling for NaN or infinities.
            out += std::isfinite(double_) ? format_double(double_, "%.21e") : "null";
            return;
        case Kind::String: append_json_string(out, string_); return;
        case Kind::Array: {
            if (elements_.empty()) {
                out += "[]";
                return;
            }
            out += '[';
            bool first = true;
            for (const Json& e : elements_) {
                if (!first) out += ',';
                first = false;
                if (pretty) {
                    out += '\n';
                    indent(out, depth + 1);
                }
                e.dump_to(out, pretty, depth + 1);
            }
            if (pretty) {
                out += '\n';
                indent(out, depth);
            }
            out += ']';
            return;
        }
        case Kind::Object: {
            if (members_.empty()) {
                out += "{}";
                return;
            }
            out += '{';
            bool first = true;
            for (const auto& [key, value] : members_) {
                if (!first) out += ',';
                first = false;
                if (pretty) {
                    out += '\n';
                    indent(out, depth + 1);
                }
                append_json_string(out, key);
                out += pretty ? " : " : ":";
                value.dump_to(out, pretty, depth + 1);
            }
            if (pretty) {
                out += '\n';
                indent(out, depth);
            }
            out += '}';
            return;
        }
    }
}

Expected<Json, std::string> value_to_json(const Value& v) {
    const std::string& t = v.type();
    switch (t[0]) {
        case 'y': return Json::unsigned_integer(*v.get_if<std::uint8_t>());
        case 'b': return Json::boolean(*v.get_if<bool>());
        case 'n': return Json::integer(*v.get_if<std::int16_t>());
        case 'q': return Json::unsigned_integer(*v.get_if<std::uint16_t>());
        case 'i': return Json::integer(*v.get_if<std::int32_t>());
        case 'u':
        case 'h': return Json::unsigned_integer(*v.get_if<std::uint32_t>());
        case 'x': return Json::integer(*v.get_if<std::int64_t>());
        case 't': return Json::unsigned_integer(*v.get_if<std::uint64_t>());
        case 'd': return Json::floating(*v.get_if<double>());
        case 's':
        case 'o':
        case 'g': return Json::string(v.text());
        case 'v': {
            const Value& inner = v.children()[0];
            auto data = value_to_json(inner);
            if (!data) return data;
            return Json::object({{"type", Json::string(inner.type())}, {"data", std::move(*data)}});
        }
        case 'a': {
            if (t.size() > 1 && t[1] == '{') {
                const char key_type = t[2];
                if (key_type != 's' && key_type != 'o' && key_type != 'g')
                    return Unexpected("JSON objects need string keys, this dictionary has '" + std::string(1, key_type) +
                                      "' keys.");
                Json object = Json::object();
                for (const Value& entry : v.children()) {
                    auto data = value_to_json(entry.children()[1]);
                    if (!data) return data;
                    object.add(entry.children()[0].text(), std::move(*data));
                }
                return object;
            }
            Json array = Json::array();
            for (const Value& e : v.children()) {
                auto data = value_to_json(e);
                if (!data) return data;
                array.push_back(std::move(*data));
            }
            return array;
        }
        case '(':
        case '{': {
            Json array = Json::array();
            for (const Value& f : v.children()) {
                auto data = value_to_json(f);
                if (!data) return data;
                array.push_back(std::move(*data));
            }
            return array;
        }
        default: return Unexpected("Unknown type '" + t + "'.");
    }
}

Expected<Json, std::string> body_to_json(std::string_view signature, const std::vector<Value>& values) {
    Json data = Json::array();
    for (const Value& v : values) {
        auto j = value_to_json(v);
        if (!j) return j;
        data.push_back(std::move(*j));
    }
    return Json::object({{"type", Json::string(std::string(signature))}, {"data", std::move(data)}});
}

}  // namespace afbusctl
