#include "afbus/signature.hpp"

namespace afbus {
namespace {

// Recursive descent over one single complete type starting at `pos`. Depths count true nesting: libdbus
// only bounds runs of consecutive 'a's, sd-bus and the specification bound nesting, and we follow the
// specification (docs/wire-format.md).
struct SignatureParser {
    std::string_view sig;
    std::size_t pos = 0;

    Expected<void, WireError> complete_type(int arrays, int structs) {
        if (pos >= sig.size()) return Unexpected(WireError::SignatureArrayWithoutElement);
        const char c = sig[pos];
        if (is_basic_type_code(c) || c == 'v') {
            ++pos;
            return {};
        }
        switch (c) {
            case 'a':
                if (arrays + 1 > kMaxArrayNesting) return Unexpected(WireError::SignatureArraysTooDeep);
                ++pos;
                if (pos >= sig.size() || sig[pos] == ')' || sig[pos] == '}')
                    return Unexpected(WireError::SignatureArrayWithoutElement);
                if (sig[pos] == '{') return dict_entry(arrays + 1, structs);
                return complete_type(arrays + 1, structs);
            case '(':
                return structure(arrays, structs);
            case '{':
                return Unexpected(WireError::SignatureDictEntryOutsideArray);
            case ')':
                return Unexpected(WireError::SignatureUnbalancedStruct);
            case '}':
                return Unexpected(WireError::SignatureUnbalancedDictEntry);
            default:
                return Unexpected(WireError::SignatureBadTypeCode);
        }
    }

    Expected<void, WireError> structure(int arrays, int structs) {
        if (structs + 1 > kMaxStructNesting) return Unexpected(WireError::SignatureStructsTooDeep);
        ++pos;  // '('
        if (pos < sig.size() && sig[pos] == ')') return Unexpected(WireError::SignatureEmptyStruct);
        while (pos < sig.size() && sig[pos] != ')') {
            if (sig[pos] == '}') return Unexpected(WireError::SignatureUnbalancedDictEntry);
            if (auto r = complete_type(arrays, structs + 1); !r) return r;
        }
        if (pos >= sig.size()) return Unexpected(WireError::SignatureUnbalancedStruct);
        ++pos;  // ')'
        return {};
    }

    Expected<void, WireError> dict_entry(int arrays, int structs) {
        if (structs + 1 > kMaxStructNesting) return Unexpected(WireError::SignatureStructsTooDeep);
        ++pos;  // '{'
        if (pos >= sig.size()) return Unexpected(WireError::SignatureUnbalancedDictEntry);
        if (sig[pos] == '}') return Unexpected(WireError::SignatureDictEntryNotTwoFields);
        if (!is_basic_type_code(sig[pos])) {
            if (sig[pos] == 'v' || sig[pos] == 'a' || sig[pos] == '(' || sig[pos] == '{')
                return Unexpected(WireError::SignatureDictKeyNotBasic);
            return complete_type(arrays, structs + 1);  // reports the bad code
        }
        ++pos;
        if (pos >= sig.size()) return Unexpected(WireError::SignatureUnbalancedDictEntry);
        if (sig[pos] == '}') return Unexpected(WireError::SignatureDictEntryNotTwoFields);
        if (sig[pos] == ')') return Unexpected(WireError::SignatureUnbalancedStruct);
        if (auto r = complete_type(arrays, structs + 1); !r) return r;
        if (pos >= sig.size()) return Unexpected(WireError::SignatureUnbalancedDictEntry);
        if (sig[pos] != '}') {
            if (sig[pos] == ')') return Unexpected(WireError::SignatureUnbalancedStruct);
            return Unexpected(WireError::SignatureDictEntryNotTwoFields);
        }
        ++pos;
        return {};
    }
};

}  // namespace

Expected<void, WireError> validate_signature(std::string_view signature) noexcept {
    if (signature.size() > kMaxSignatureLength) return Unexpected(WireError::SignatureTooLong);
    SignatureParser parser{signature};
    while (parser.pos < signature.size()) {
        if (auto r = parser.complete_type(0, 0); !r) return r;
    }
    return {};
}

Expected<void, WireError> validate_single_complete_type(std::string_view signature) noexcept {
    if (signature.size() > kMaxSignatureLength) return Unexpected(WireError::SignatureTooLong);
    if (signature.empty()) return Unexpected(WireError::SignatureNotSingleCompleteType);
    SignatureParser parser{signature};
    if (auto r = parser.complete_type(0, 0); !r) return r;
    if (parser.pos != signature.size()) {
        // Report a malformed tail as such rather than as "more than one type".
        if (auto r = validate_signature(signature); !r) return r;
        return Unexpected(WireError::SignatureNotSingleCompleteType);
    }
    return {};
}

}  // namespace afbus
