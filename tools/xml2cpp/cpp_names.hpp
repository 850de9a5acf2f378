// D-Bus names as C++ identifiers: interface names as namespaces and classes, member and argument names as
// functions and parameters. D-Bus member names are already identifiers, but argument names are free text
// (or absent), and any of them may be a C++ keyword.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xml2cpp {

// `name` as a C++ identifier: characters other than letters, digits and '_' become '_', a leading digit
// gets "arg_" before it, and a keyword (or alternative token, or a name the standard library's macros
// take) gets a '_' after it. An empty name gives "".
std::string cpp_identifier(std::string_view name);

[[nodiscard]] bool is_cpp_keyword(std::string_view word) noexcept;

// Parameter names for arguments named `names` (empty: unnamed): each sanitised, an unnamed one "argN"
// (N its position), and each distinct from the others and from `reserved` (the generated function's own
// parameters) by '_' appended.
std::vector<std::string> parameter_names(const std::vector<std::string>& names,
                                         const std::vector<std::string>& reserved = {});

// "org.example.Calculator" → {"org", "example"} and "Calculator", each a C++ identifier.
struct CppScope {
    std::vector<std::string> namespaces;
    std::string class_stem;
    [[nodiscard]] std::string qualified_namespace() const;  // "org::example"
};
CppScope scope_of_interface(std::string_view interface);

}  // namespace xml2cpp
