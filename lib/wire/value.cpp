#include "afbus/value.hpp"

#include <cstdio>

#include "afbus/names.hpp"
#include "afbus/signature.hpp"
#include "afbus/validate.hpp"

namespace afbus {

Value Value::structure(std::vector<Value> fields) {
    std::string type = "(";
    for (const Value& f : fields) type += f.type();
    type += ')';
    return {std::move(type), std::move(fields)};
}

Value Value::dict_entry(Value key, Value value) {
    std::string type = "{" + key.type() + value.type() + "}";
    std::vector<Value> pair;
    pair.reserve(2);
    pair.push_back(std::move(key));
    pair.push_back(std::move(value));
    return {std::move(type), std::move(pair)};
}

namespace {

void append_quoted(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
}

void append_text(std::string& out, const Value& v) {
    const std::string& t = v.type();
    switch (t[0]) {
        case 'y': out += std::to_string(*v.get_if<std::uint8_t>()); return;
        case 'b': out += *v.get_if<bool>() ? "true" : "false"; return;
        case 'n': out += std::to_string(*v.get_if<std::int16_t>()); return;
        case 'q': out += std::to_string(*v.get_if<std::uint16_t>()); return;
        case 'i': out += std::to_string(*v.get_if<std::int32_t>()); return;
        case 'u': out += std::to_string(*v.get_if<std::uint32_t>()); return;
        case 'h': out += "fd#" + std::to_string(*v.get_if<std::uint32_t>()); return;
        case 'x': out += std::to_string(*v.get_if<std::int64_t>()); return;
        case 't': out += std::to_string(*v.get_if<std::uint64_t>()); return;
        case 'd': {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.17g", *v.get_if<double>());
            out += buf;
            return;
        }
        case 's': append_quoted(out, v.text()); return;
        case 'o': out += "objectpath "; append_quoted(out, v.text()); return;
        case 'g': out += "signature "; append_quoted(out, v.text()); return;
        case 'v':
            out += '<';
            append_text(out, v.children()[0]);
            out += '>';
            return;
        case 'a': {
            const bool dict = t.size() > 1 && t[1] == '{';
            out += dict ? '{' : '[';
            bool first = true;
            for (const Value& e : v.children()) {
                if (!first) out += ", ";
                first = false;
                if (dict) {
                    append_text(out, e.children()[0]);
                    out += ": ";
                    append_text(out, e.children()[1]);
                } else {
                    append_text(out, e);
                }
            }
            out += dict ? '}' : ']';
            return;
        }
        case '(':
        case '{': {
            out += '(';
            bool first = true;
            for (const Value& f : v.children()) {
                if (!first) out += ", ";
                first = false;
                append_text(out, f);
            }
            if (v.children().size() == 1) out += ',';
            out += ')';
            return;
        }
        default:
            out += "?";
    }
}

template <class T>
Expected<void, WireError> expect_storage(const Value& v) {
    if (v.get_if<T>() == nullptr) return Unexpected(WireError::TypeMismatch);
    return {};
}

}  // namespace

std::string Value::to_string() const {
    std::string out;
    append_text(out, *this);
    return out;
}

Expected<void, WireError> encode_value(Encoder& e, const Value& v) {
    const std::string& t = v.type();
    if (t.empty()) return Unexpected(WireError::TypeMismatch);
    switch (t[0]) {
#define AFBUS_SCALAR(code, type, put)                                 \
    case code:                                                        \
        if (auto r = expect_storage<type>(v); !r) return r;           \
        e.put(*v.get_if<type>());                                     \
        return {};
        AFBUS_SCALAR('y', std::uint8_t, put_u8)
        AFBUS_SCALAR('n', std::int16_t, put_u16)
        AFBUS_SCALAR('q', std::uint16_t, put_u16)
        AFBUS_SCALAR('i', std::int32_t, put_u32)
        AFBUS_SCALAR('u', std::uint32_t, put_u32)
        AFBUS_SCALAR('h', std::uint32_t, put_u32)
        AFBUS_SCALAR('x', std::int64_t, put_u64)
        AFBUS_SCALAR('t', std::uint64_t, put_u64)
        AFBUS_SCALAR('d', double, put_double)
#undef AFBUS_SCALAR
        case 'b':
            if (auto r = expect_storage<bool>(v); !r) return r;
            e.put_u32(*v.get_if<bool>() ? 1 : 0);
            return {};
        case 's':
            if (auto r = expect_storage<std::string>(v); !r) return r;
            if (!is_valid_utf8(v.text())) return Unexpected(WireError::StringInvalidUtf8);
            e.put_string(v.text());
            return {};
        case 'o':
            if (auto r = expect_storage<std::string>(v); !r) return r;
            if (!is_valid_object_path(v.text())) return Unexpected(WireError::BadObjectPath);
            e.put_string(v.text());
            return {};
        case 'g':
            if (auto r = expect_storage<std::string>(v); !r) return r;
            if (!validate_signature(v.text())) return Unexpected(WireError::BadSignatureValue);
            e.put_signature(v.text());
            return {};
        case 'v': {
            if (auto r = expect_storage<std::vector<Value>>(v); !r) return r;
            if (v.children().size() != 1) return Unexpected(WireError::TypeMismatch);
            const Value& inner = v.children()[0];
            if (!validate_single_complete_type(inner.type())) return Unexpected(WireError::BadSignatureValue);
            e.put_signature(inner.type());
            return encode_value(e, inner);
        }
        case 'a': {
            if (auto r = expect_storage<std::vector<Value>>(v); !r) return r;
            const std::string_view element = std::string_view(t).substr(1);
            auto mark = e.begin_array(alignment_of(element[0]));
            for (const Value& child : v.children()) {
                if (child.type() != element) return Unexpected(WireError::TypeMismatch);
                if (auto r = encode_value(e, child); !r) return r;
            }
            if (e.end_array(mark) > kMaxArrayLength) return Unexpected(WireError::ArrayTooLong);
            return {};
        }
        case '(':
        case '{': {
            if (auto r = expect_storage<std::vector<Value>>(v); !r) return r;
            e.align(8);
            std::size_t at = 1;
            for (const Value& child : v.children()) {
                const std::size_t n = complete_type_length(std::string_view(t).substr(at));
                if (std::string_view(t).substr(at, n) != child.type()) return Unexpected(WireError::TypeMismatch);
                if (auto r = encode_value(e, child); !r) return r;
                at += n;
            }
            if (at + 1 != t.size()) return Unexpected(WireError::TypeMismatch);
            return {};
        }
        default:
            return Unexpected(WireError::SignatureBadTypeCode);
    }
}

Expected<Value, WireError> decode_value(Decoder& d, std::string_view type) {
    auto failed = [&d]() -> Expected<Value, WireError> { return Unexpected(d.error()); };
    const std::string_view t = type.substr(0, complete_type_length(type));
    switch (t[0]) {
        case 'y': {
            std::uint8_t v;
            if (!d.read_u8(v)) return failed();
            return Value::byte(v);
        }
        case 'b': {
            std::uint32_t v;
            if (!d.read_u32(v)) return failed();
            if (v > 1) return Unexpected(WireError::BadBoolean);
            return Value::boolean(v != 0);
        }
        case 'n': case 'q': {
            std::uint16_t v;
            if (!d.read_u16(v)) return failed();
            if (t[0] == 'n') return Value::int16(static_cast<std::int16_t>(v));
            return Value::uint16(v);
        }
        case 'i': case 'u': case 'h': {
            std::uint32_t v;
            if (!d.read_u32(v)) return failed();
            if (t[0] == 'i') return Value::int32(static_cast<std::int32_t>(v));
            if (t[0] == 'h') return Value::unix_fd_index(v);
            return Value::uint32(v);
        }
        case 'x': case 't': case 'd': {
            std::uint64_t v;
            if (!d.read_u64(v)) return failed();
            if (t[0] == 'x') return Value::int64(static_cast<std::int64_t>(v));
            if (t[0] == 'd') return Value::float64(std::bit_cast<double>(v));
            return Value::uint64(v);
        }
        case 's': case 'o': {
            std::string_view s;
            if (!d.read_string(s)) return failed();
            return Value(std::string(t), std::string(s));
        }
        case 'g': {
            std::string_view s;
            if (!d.read_signature(s)) return failed();
            return Value::signature(std::string(s));
        }
        case 'v': {
            std::string_view inner;
            if (!d.read_signature(inner)) return failed();
            if (!validate_single_complete_type(inner)) return Unexpected(WireError::BadSignatureValue);
            auto value = decode_value(d, inner);
            if (!value) return value;
            return Value::variant(std::move(*value));
        }
        case 'a': {
            const std::string_view element = t.substr(1);
            std::uint32_t length;
            if (!d.read_u32(length)) return failed();
            if (length > kMaxArrayLength) return Unexpected(WireError::ArrayTooLong);
            if (!d.align(alignment_of(element[0]))) return failed();
            if (length > d.remaining()) return Unexpected(WireError::Truncated);
            const std::size_t end = d.pos() + length;
            std::vector<Value> elements;
            while (d.pos() < end) {
                auto e = decode_value(d, element);
                if (!e) return e;
                elements.push_back(std::move(*e));
            }
            if (d.pos() != end) return Unexpected(WireError::ArrayLengthMismatch);
            return Value(std::string(t), std::move(elements));
        }
        case '(':
        case '{': {
            if (!d.align(8)) return failed();
            std::vector<Value> fields;
            std::size_t at = 1;
            while (t[at] != ')' && t[at] != '}') {
                auto f = decode_value(d, t.substr(at));
                if (!f) return f;
                at += f->type().size();
                fields.push_back(std::move(*f));
            }
            return Value(std::string(t), std::move(fields));
        }
        default:
            return Unexpected(WireError::SignatureBadTypeCode);
    }
}

}  // namespace afbus
