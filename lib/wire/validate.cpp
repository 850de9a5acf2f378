#include "afbus/validate.hpp"

#include "afbus/names.hpp"
#include "afbus/signature.hpp"

namespace afbus {
namespace {

class BodyValidator {
public:
    explicit BodyValidator(Decoder& decoder) : d_(decoder) {}

    // Validates the single complete type at the start of `type`; returns its signature length or 0.
    std::size_t value(std::string_view type, int depth) {
        switch (type[0]) {
            case 'y': {
                std::uint8_t v;
                return d_.read_u8(v) ? 1 : 0;
            }
            case 'n': case 'q': {
                std::uint16_t v;
                return d_.read_u16(v) ? 1 : 0;
            }
            case 'i': case 'u': {
                std::uint32_t v;
                return d_.read_u32(v) ? 1 : 0;
            }
            case 'x': case 't': case 'd': {
                std::uint64_t v;
                return d_.read_u64(v) ? 1 : 0;
            }
            case 'b': {
                std::uint32_t v;
                if (!d_.read_u32(v)) return 0;
                return v <= 1 ? 1 : fail(WireError::BadBoolean);
            }
            case 'h': {
                // Any index is well-formed: whether it names one of the message's fds is a question for
                // whoever reads the value (Codec<UnixFd> fails then), as in libdbus and dbus-daemon, which
                // forward such a message untouched. docs/wire-format.md.
                std::uint32_t v;
                return d_.read_u32(v) ? 1 : 0;
            }
            case 's': {
                std::string_view s;
                if (!d_.read_string(s)) return 0;
                return is_valid_utf8(s) ? 1 : fail(WireError::StringInvalidUtf8);
            }
            case 'o': {
                std::string_view s;
                if (!d_.read_string(s)) return 0;
                return is_valid_object_path(s) ? 1 : fail(WireError::BadObjectPath);
            }
            case 'g': {
                std::string_view s;
                if (!d_.read_signature(s)) return 0;
                return validate_signature(s) ? 1 : fail(WireError::BadSignatureValue);
            }
            case 'v':
                return variant(depth) ? 1 : 0;
            case 'a':
                return array(type, depth);
            case '(':
            case '{':
                return structure(type, depth);
            default:
                return fail(WireError::SignatureBadTypeCode);
        }
    }

private:
    std::size_t fail(WireError e) {
        d_.fail(e);
        return 0;
    }

    bool variant(int depth) {
        std::string_view inner;
        if (!d_.read_signature(inner)) return false;
        if (!validate_single_complete_type(inner)) return fail(WireError::BadSignatureValue) != 0;
        if (depth + 1 > kMaxTotalNesting) return fail(WireError::NestedTooDeep) != 0;
        return value(inner, depth + 1) != 0;
    }

    std::size_t array(std::string_view type, int depth) {
        const std::string_view element = type.substr(1, complete_type_length(type.substr(1)));
        std::uint32_t length;
        if (!d_.read_u32(length)) return 0;
        if (length > kMaxArrayLength) return fail(WireError::ArrayTooLong);
        if (!d_.align(alignment_of(element[0]))) return 0;
        if (length > d_.remaining()) return fail(WireError::Truncated);
        const std::size_t end = d_.pos() + length;
        if (length != 0 && depth + 1 > kMaxTotalNesting) return fail(WireError::NestedTooDeep);

        // Fixed-size elements need no walk: the length must be a whole number of them.
        const char e = element[0];
        if (e == 'y' || e == 'n' || e == 'q' || e == 'i' || e == 'u' || e == 'x' || e == 't' || e == 'd') {
            if (length % alignment_of(e) != 0) return fail(WireError::ArrayLengthMismatch);
            d_.seek(end);
            return 1 + element.size();
        }
        while (d_.pos() < end) {
            if (value(element, depth + 1) == 0) return 0;
        }
        if (d_.pos() != end) return fail(WireError::ArrayLengthMismatch);
        return 1 + element.size();
    }

    std::size_t structure(std::string_view type, int depth) {
        if (!d_.align(8)) return 0;
        if (depth + 1 > kMaxTotalNesting) return fail(WireError::NestedTooDeep);
        std::size_t at = 1;
        while (type[at] != ')' && type[at] != '}') {
            const std::size_t n = value(type.substr(at), depth + 1);
            if (n == 0) return 0;
            at += n;
        }
        return at + 1;
    }

    Decoder& d_;
};

}  // namespace

Expected<void, WireError> validate_values(Decoder& decoder, std::string_view signature, int depth) noexcept {
    BodyValidator validator(decoder);
    std::size_t at = 0;
    while (at < signature.size() && !decoder.failed()) {
        const std::size_t n = validator.value(signature.substr(at), depth);
        if (n == 0) break;
        at += n;
    }
    if (decoder.failed()) return Unexpected(decoder.error());
    return {};
}

}  // namespace afbus
