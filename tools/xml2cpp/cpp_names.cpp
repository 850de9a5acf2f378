#include "cpp_names.hpp"

#include <algorithm>
#include <array>

namespace xml2cpp {

namespace {

// C++20's keywords and alternative tokens, and identifiers that are macros in the standard headers a
// generated header includes.
constexpr std::array<std::string_view, 104> kReservedWords = {
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "auto",
    "bitand",
    "bitor",
    "bool",
    "break",
    "case",
    "catch",
    "char",
    "char8_t",
    "char16_t",
    "char32_t",
    "class",
    "compl",
    "concept",
    "const",
    "consteval",
    "constexpr",
    "constinit",
    "const_cast",
    "continue",
    "co_await",
    "co_return",
    "co_yield",
    "decltype",
    "default",
    "delete",
    "do",
    "double",
    "dynamic_cast",
    "else",
    "enum",
    "explicit",
    "export",
    "extern",
    "false",
    "float",
    "for",
    "friend",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "not",
    "not_eq",
    "nullptr",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "register",
    "reinterpret_cast",
    "requires",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "static_assert",
    "static_cast",
    "struct",
    "switch",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typedef",
    "typeid",
    "typename",
    "union",
    "unsigned",
    "using",
    "virtual",
    "void",
    "volatile",
    "wchar_t",
    "while",
    "xor",
    "xor_eq",
    "final",
    "override",
    "import",
    "module",
    // macros of <cassert>, <cerrno>, <cstdint> and friends, and the namespaces generated code names
    "assert",
    "errno",
    "NULL",
    "EOF",
    "afbus",
    "std",
    "stdin",
    "stdout",
};

bool is_identifier_character(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

bool is_cpp_keyword(std::string_view word) noexcept {
    return std::find(kReservedWords.begin(), kReservedWords.end(), word) != kReservedWords.end();
}

std::string cpp_identifier(std::string_view name) {
    std::string out;
    out.reserve(name.size() + 4);
    for (const char c : name) out += is_identifier_character(c) ? c : '_';
    if (!out.empty() && out[0] >= '0' && out[0] <= '9') out = "arg_" + out;
    if (is_cpp_keyword(out)) out += '_';
    return out;
}

std::vector<std::string> parameter_names(const std::vector<std::string>& names,
                                         const std::vector<std::string>& reserved) {
    std::vector<std::string> out;
    out.reserve(names.size());
    std::vector<std::string> taken = reserved;
    for (std::size_t i = 0; i < names.size(); ++i) {
        std::string name = cpp_identifier(names[i]);
        if (name.empty()) name = "arg" + std::to_string(i);
        while (std::find(taken.begin(), taken.end(), name) != taken.end()) name += '_';
        taken.push_back(name);
        out.push_back(std::move(name));
    }
    return out;
}

std::string CppScope::qualified_namespace() const {
    std::string out;
    for (const auto& part : namespaces) {
        if (!out.empty()) out += "::";
        out += part;
    }
    return out;
}

CppScope scope_of_interface(std::string_view interface) {
    CppScope scope;
    std::size_t start = 0;
    while (true) {
        const auto dot = interface.find('.', start);
        const auto part =
            cpp_identifier(interface.substr(start, dot == std::string_view::npos ? dot : dot - start));
        if (dot == std::string_view::npos) {
            scope.class_stem = part;
            return scope;
        }
        scope.namespaces.push_back(part);
        start = dot + 1;
    }
}

}  // namespace xml2cpp
