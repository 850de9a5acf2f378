#include "generator.hpp"

#include <algorithm>
#include <sstream>

#include "cpp_names.hpp"
#include "cpp_type.hpp"

namespace xml2cpp {

using afbus::Unexpected;

namespace {

constexpr std::string_view kIndent = "    ";

// The C++ types of a list of arguments (already checked by check_types).
std::vector<std::string> types_of(const std::vector<Argument>& arguments) {
    std::vector<std::string> out;
    for (const auto& argument : arguments) out.push_back(*cpp_type(argument.type));
    return out;
}

std::vector<std::string> names_of(const std::vector<Argument>& arguments) {
    std::vector<std::string> out;
    for (const auto& argument : arguments) out.push_back(argument.name);
    return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator = ", ") {
    std::string out;
    for (const auto& part : parts) {
        if (!out.empty()) out += separator;
        out += part;
    }
    return out;
}

// A C++ string literal for `text` (names from the XML are D-Bus names, but argument names are free).
std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + '"';
}

// {"a", "b"} as a braced list of string literals.
std::string name_list(const std::vector<Argument>& arguments) {
    std::vector<std::string> quoted_names;
    for (const auto& argument : arguments) quoted_names.push_back(quoted(argument.name));
    return "{" + join(quoted_names) + "}";
}

// The XML names arguments all or none; a partly named list is given to the builder as none.
bool all_named(const std::vector<Argument>& arguments) {
    return std::all_of(arguments.begin(), arguments.end(), [](const Argument& a) { return !a.name.empty(); });
}

// A D-Bus member's signature for a comment: "Add(d a, d b) -> (d sum)".
std::string describe_arguments(const std::vector<Argument>& arguments) {
    std::vector<std::string> parts;
    for (const auto& a : arguments) parts.push_back(a.name.empty() ? a.type : a.type + " " + a.name);
    return "(" + join(parts) + ")";
}

// Every type in the model maps to C++ (always true for what parse_introspection returns).
afbus::Expected<void, std::string> check_types(const IntrospectionData& data) {
    auto check = [](const Interface& interface, std::string_view member,
                    std::string_view type) -> afbus::Expected<void, std::string> {
        if (auto mapped = cpp_type(type); !mapped) {
            return Unexpected(interface.name + "." + std::string(member) + ": type '" + std::string(type) +
                              "': " + mapped.error());
        }
        return {};
    };
    for (const auto& interface : data.interfaces) {
        for (const auto& method : interface.methods) {
            for (const auto& a : method.in)
                if (auto ok = check(interface, method.name, a.type); !ok) return ok;
            for (const auto& a : method.out)
                if (auto ok = check(interface, method.name, a.type); !ok) return ok;
        }
        for (const auto& signal : interface.signals)
            for (const auto& a : signal.arguments)
                if (auto ok = check(interface, signal.name, a.type); !ok) return ok;
        for (const auto& property : interface.properties)
            if (auto ok = check(interface, property.name, property.type); !ok) return ok;
    }
    return {};
}

// The member function names of one generated class, each unique: a D-Bus member whose name is taken by
// another (a method "get_Memory" beside a property "Memory") gets '_' appended.
class MemberNames {
public:
    explicit MemberNames(std::vector<std::string> fixed) : taken_(std::move(fixed)) {}
    std::string take(std::string name) {
        name = cpp_identifier(name);
        while (std::find(taken_.begin(), taken_.end(), name) != taken_.end()) name += '_';
        taken_.push_back(name);
        return name;
    }
    [[nodiscard]] const std::vector<std::string>& all() const noexcept { return taken_; }

private:
    std::vector<std::string> taken_;
};

std::string deprecated_attribute(const Interface& interface, bool member_deprecated,
                                 std::string_view member) {
    if (!member_deprecated && !interface.deprecated) return "";
    return "[[deprecated(" + quoted(interface.name + "." + std::string(member) + " is deprecated") + ")]] ";
}

// The types a results list is read as: TypedResult<T...> reads one struct from a single std::tuple.
std::string template_arguments(const std::vector<Argument>& arguments) {
    return join(types_of(arguments));
}

// "const T& name" for each, with the class's function names and `reserved` kept clear.
std::vector<std::string> parameters(const std::vector<Argument>& arguments,
                                    const std::vector<std::string>& names, const char* prefix,
                                    const char* suffix) {
    std::vector<std::string> out;
    const auto types = types_of(arguments);
    for (std::size_t i = 0; i < arguments.size(); ++i) out.push_back(prefix + types[i] + suffix + names[i]);
    return out;
}

std::vector<std::string> with_reserved(const std::vector<std::string>& names,
                                       std::vector<std::string> reserved) {
    reserved.insert(reserved.end(), names.begin(), names.end());
    return reserved;
}

void open_header(std::ostringstream& out, const GeneratorInput& input, std::string_view side,
                 std::string_view include) {
    out << "// " << side << " generated by afbus-xml2cpp " << input.tool_version << " from "
        << input.source_name << ".\n// Do not edit: regenerate it from the XML instead.\n"
        << "#pragma once\n\n"
        << "#include <" << include << ">\n\n"
        << "#include <cstdint>\n#include <map>\n#include <string>\n#include <string_view>\n#include <tuple>\n"
        << "#include <utility>\n#include <vector>\n";
}

void open_namespace(std::ostringstream& out, const CppScope& scope) {
    if (!scope.namespaces.empty()) out << "\nnamespace " << scope.qualified_namespace() << " {\n";
}
void close_namespace(std::ostringstream& out, const CppScope& scope) {
    if (!scope.namespaces.empty()) out << "\n}  // namespace " << scope.qualified_namespace() << "\n";
}

// --- Proxy ---

void write_proxy(std::ostringstream& out, const Interface& interface) {
    const CppScope scope = scope_of_interface(interface.name);
    const std::string class_name = scope.class_stem + "Proxy";
    // The names the class defines itself, and those its function bodies use.
    MemberNames members(
        {"interface_name", "proxy", "proxy_", "get_all_properties", "on_properties_changed", class_name});
    const std::vector<std::string> body_names = {"options", "handler", "proxy_", "interface_name", "value"};

    // Member function names first, so that parameter names can keep clear of them all.
    struct MethodNames {
        std::string call;
        std::string async;
    };
    std::vector<MethodNames> method_names;
    for (const auto& method : interface.methods) {
        MethodNames names;
        names.call = members.take(method.name);
        if (!method.no_reply) names.async = members.take(method.name + "_async");
        method_names.push_back(std::move(names));
    }
    std::vector<std::string> signal_names;
    for (const auto& signal : interface.signals) signal_names.push_back(members.take("on_" + signal.name));
    std::vector<std::pair<std::string, std::string>> property_names;
    for (const auto& property : interface.properties) {
        property_names.emplace_back(property.readable() ? members.take("get_" + property.name) : "",
                                    property.writable() ? members.take("set_" + property.name) : "");
    }
    const auto reserved = with_reserved(members.all(), body_names);

    open_namespace(out, scope);
    out << "\n// The client's side of " << interface.name << ": each method calls the remote object through\n"
        << "// afbus::Proxy (afbus/proxy.hpp), whose Connection must outlive this proxy.\n"
        << "class " << (interface.deprecated ? "[[deprecated]] " : "") << class_name << " {\npublic:\n"
        << kIndent << "static constexpr std::string_view interface_name = " << quoted(interface.name)
        << ";\n\n"
        << kIndent << class_name
        << "(afbus::Connection& connection, std::string destination, std::string path)\n"
        << kIndent << kIndent << ": proxy_(connection, std::move(destination), std::move(path)) {}\n\n"
        << kIndent << "// The underlying proxy: its destination, path and connection, and untyped access.\n"
        << kIndent << "[[nodiscard]] afbus::Proxy& proxy() noexcept { return proxy_; }\n";

    for (std::size_t m = 0; m < interface.methods.size(); ++m) {
        const Method& method = interface.methods[m];
        const auto in_names = parameter_names(names_of(method.in), reserved);
        const auto in = parameters(method.in, in_names, "const ", "& ");
        const std::string results = template_arguments(method.out);
        const std::string deprecated = deprecated_attribute(interface, method.deprecated, method.name);
        const std::string call_arguments = in_names.empty() ? "" : ", " + join(in_names);
        out << "\n" << kIndent << "// " << method.name << describe_arguments(method.in);
        if (!method.out.empty()) out << " -> " << describe_arguments(method.out);
        if (method.no_reply) out << "\n" << kIndent << "// NoReply: sent without waiting; nothing comes back";
        out << "\n";
        if (method.no_reply && method.out.empty()) {
            auto with_options = in;
            with_options.push_back("afbus::CallOptions options = {}");
            out << kIndent << deprecated << "afbus::Expected<void, afbus::Error> " << method_names[m].call
                << "(" << join(with_options) << ") {\n"
                << kIndent << kIndent << "options.no_reply = true;\n"
                << kIndent << kIndent << "return proxy_.call<>(options, interface_name, "
                << quoted(method.name) << call_arguments << ");\n"
                << kIndent << "}\n";
            continue;
        }
        auto with_options = in;
        with_options.push_back("const afbus::CallOptions& options = {}");
        out << kIndent << deprecated << "afbus::TypedResult<" << results << "> " << method_names[m].call
            << "(" << join(with_options) << ") {\n"
            << kIndent << kIndent << "return proxy_.call<" << results << ">(options, interface_name, "
            << quoted(method.name) << call_arguments << ");\n"
            << kIndent << "}\n";
        if (method_names[m].async.empty()) continue;
        auto async = in;
        async.push_back("afbus::TypedHandler<" + results + "> handler");
        async.push_back("const afbus::CallOptions& options = {}");
        out << kIndent << "// The same without waiting: `handler` runs from the Connection's process().\n"
            << kIndent << deprecated << "afbus::Expected<afbus::Slot, afbus::Error> " << method_names[m].async
            << "(" << join(async) << ") {\n"
            << kIndent << kIndent << "return proxy_.call_async<" << results << ">(options, interface_name, "
            << quoted(method.name) << ", std::move(handler)" << call_arguments << ");\n"
            << kIndent << "}\n";
    }

    for (std::size_t i = 0; i < interface.signals.size(); ++i) {
        const Signal& signal = interface.signals[i];
        const std::string types = template_arguments(signal.arguments);
        out << "\n"
            << kIndent << "// Signal " << signal.name << describe_arguments(signal.arguments)
            << ", from this proxy's destination and path, until the Slot is dropped.\n"
            << kIndent << deprecated_attribute(interface, signal.deprecated, signal.name)
            << "afbus::Expected<afbus::Slot, afbus::Error> " << signal_names[i] << "(afbus::TypedHandler<"
            << types << "> handler) {\n"
            << kIndent << kIndent << "return proxy_.on_signal<" << types << ">(interface_name, "
            << quoted(signal.name) << ", std::move(handler));\n"
            << kIndent << "}\n";
    }

    for (std::size_t i = 0; i < interface.properties.size(); ++i) {
        const Property& property = interface.properties[i];
        const std::string type = *cpp_type(property.type);
        const std::string deprecated = deprecated_attribute(interface, property.deprecated, property.name);
        out << "\n"
            << kIndent << "// Property " << property.name << " (" << property.type << ", "
            << (property.access == Property::Access::Read    ? "read"
                : property.access == Property::Access::Write ? "write"
                                                             : "readwrite")
            << ")\n";
        if (property.readable()) {
            out << kIndent << deprecated << "afbus::TypedResult<" << type << "> " << property_names[i].first
                << "(const afbus::CallOptions& options = {}) {\n"
                << kIndent << kIndent << "return proxy_.get<" << type << ">(interface_name, "
                << quoted(property.name) << ", options);\n"
                << kIndent << "}\n";
        }
        if (property.writable()) {
            out << kIndent << deprecated << "afbus::Expected<void, afbus::Error> " << property_names[i].second
                << "(const " << type << "& value, const afbus::CallOptions& options = {}) {\n"
                << kIndent << kIndent << "return proxy_.set(interface_name, " << quoted(property.name)
                << ", value, options);\n"
                << kIndent << "}\n";
        }
    }
    if (!interface.properties.empty()) {
        out << "\n"
            << kIndent << "// Every property of the interface with its value.\n"
            << kIndent << "afbus::Expected<std::map<std::string, afbus::Variant>, afbus::Error> "
            << "get_all_properties(const afbus::CallOptions& options = {}) {\n"
            << kIndent << kIndent << "return proxy_.get_all(interface_name, options);\n"
            << kIndent << "}\n"
            << kIndent << "// PropertiesChanged for this interface, until the Slot is dropped.\n"
            << kIndent << "afbus::Expected<afbus::Slot, afbus::Error> "
            << "on_properties_changed(afbus::Proxy::PropertiesChangedHandler handler) {\n"
            << kIndent << kIndent
            << "return proxy_.on_properties_changed(interface_name, std::move(handler));\n"
            << kIndent << "}\n";
    }
    out << "\nprivate:\n" << kIndent << "afbus::Proxy proxy_;\n};\n";
    close_namespace(out, scope);
}

// --- Adaptor ---

// What a method's implementation returns: nothing, one value, or a std::tuple of several; a single struct
// result stays a tuple inside the tuple (InterfaceBuilder reads a bare std::tuple as several results).
std::string adaptor_results(const Method& method) {
    const auto types = types_of(method.out);
    if (types.empty()) return "afbus::Expected<void, afbus::Error>";
    if (types.size() == 1 && method.out[0].type[0] != '(')
        return "afbus::Expected<" + types[0] + ", afbus::Error>";
    return "afbus::Expected<std::tuple<" + join(types) + ">, afbus::Error>";
}

// A property type InterfaceBuilder serves: not a bare variant (its value would travel as the held type)
// nor an fd (which cannot travel in a variant).
bool servable_property(const Property& property) {
    return property.type != "v" && property.type != "h";
}

void write_adaptor(std::ostringstream& out, const Interface& interface, std::vector<std::string>& warnings) {
    const CppScope scope = scope_of_interface(interface.name);
    const std::string class_name = scope.class_stem + "Adaptor";
    MemberNames members({"interface_name", "object", "object_", "describe", "register_adaptor",
                         "unregister_adaptor", "emit_properties_changed", class_name});
    const std::vector<std::string> body_names = {"builder", "reply",          "value",
                                                 "object_", "interface_name", "names"};

    std::vector<std::string> method_names;
    for (const auto& method : interface.methods) method_names.push_back(members.take(method.name));
    std::vector<std::string> emit_names;
    std::vector<std::string> signal_members;
    for (const auto& signal : interface.signals) {
        emit_names.push_back(members.take("emit_" + signal.name));
        signal_members.push_back(members.take(signal.name + "_signal_"));
    }
    std::vector<std::pair<std::string, std::string>> property_names;
    for (const auto& property : interface.properties) {
        if (!servable_property(property)) {
            property_names.emplace_back();
            warnings.push_back(interface.name + "." + property.name + ": a property of type '" +
                               property.type +
                               "' is not served by the adaptor (InterfaceBuilder does not support it)");
            continue;
        }
        property_names.emplace_back(property.readable() ? members.take("get_" + property.name) : "",
                                    property.writable() ? members.take("set_" + property.name) : "");
    }
    const auto reserved = with_reserved(members.all(), body_names);

    open_namespace(out, scope);
    out << "\n// The service's side of " << interface.name << ": derive from it, implement the pure virtual\n"
        << "// functions, and register_adaptor() exports the interface on the Object, whose calls then run "
           "them.\n"
        << "// The adaptor must outlive the export: unregister_adaptor() or drop the Object first.\n"
        << "class " << class_name << " {\npublic:\n"
        << kIndent << "static constexpr std::string_view interface_name = " << quoted(interface.name)
        << ";\n\n"
        << kIndent << "explicit " << class_name << "(afbus::Object& object) : object_(&object) {}\n"
        << kIndent << "virtual ~" << class_name << "() = default;\n"
        << kIndent << class_name << "(const " << class_name << "&) = delete;\n"
        << kIndent << class_name << "& operator=(const " << class_name << "&) = delete;\n\n"
        << kIndent << "[[nodiscard]] afbus::Object& object() const noexcept { return *object_; }\n\n"
        << kIndent
        << "// The interface, its methods and properties served by this object's virtual functions.\n"
        << kIndent << "afbus::InterfaceBuilder describe() {\n"
        << kIndent << kIndent << "afbus::InterfaceBuilder builder{std::string(interface_name)};\n";

    // One builder call per member; the lambdas forward to the virtual functions.
    const std::string body = std::string(kIndent) + std::string(kIndent);
    for (std::size_t m = 0; m < interface.methods.size(); ++m) {
        const Method& method = interface.methods[m];
        const auto names = parameter_names(names_of(method.in), reserved);
        auto lambda_parameters = parameters(method.in, names, "", " ");
        std::vector<std::string> forwarded;
        for (const auto& name : names) forwarded.push_back("std::move(" + name + ")");
        std::string call;
        if (method.server_async) {
            lambda_parameters.insert(lambda_parameters.begin(),
                                     "afbus::PendingReply<" + template_arguments(method.out) + "> reply");
            forwarded.insert(forwarded.begin(), "std::move(reply)");
            call = method_names[m] + "(" + join(forwarded) + ");";
        } else {
            call = "return " + method_names[m] + "(" + join(forwarded) + ");";
        }
        out << body << "builder.method(\n"
            << body << kIndent << quoted(method.name) << ", [this](" << join(lambda_parameters) << ") { "
            << call << " },\n"
            << body << kIndent << (all_named(method.in) ? name_list(method.in) : "{}") << ", "
            << (all_named(method.out) ? name_list(method.out) : "{}") << ");\n";
    }
    for (const auto& signal : interface.signals) {
        out << body << "(void)builder.signal<" << template_arguments(signal.arguments) << ">("
            << quoted(signal.name) << ", "
            << (all_named(signal.arguments) ? name_list(signal.arguments) : "{}") << ");\n";
    }
    for (std::size_t i = 0; i < interface.properties.size(); ++i) {
        const Property& property = interface.properties[i];
        if (!servable_property(property)) {
            out << body << "// " << property.name << " (" << property.type
                << ") is not served: InterfaceBuilder does not support a property of this type.\n";
            continue;
        }
        const std::string type = *cpp_type(property.type);
        const auto& [getter, setter] = property_names[i];
        const std::string set = "[this](" + type + " value) { return " + setter + "(std::move(value)); }";
        if (property.access == Property::Access::Read) {
            out << body << "builder.property(" << quoted(property.name) << ", [this] { return " << getter
                << "(); });\n";
        } else if (property.access == Property::Access::ReadWrite) {
            out << body << "builder.property(\n"
                << body << kIndent << quoted(property.name) << ", [this] { return " << getter << "(); },\n"
                << body << kIndent << set << ");\n";
        } else {
            out << body << "builder.write_only_property<" << type << ">(\n"
                << body << kIndent << quoted(property.name) << ", " << set << ");\n";
        }
    }
    out << body << "return builder;\n"
        << kIndent << "}\n\n"
        << kIndent << "// Exports the interface on the object (an Error if it is already exported there).\n"
        << kIndent
        << "afbus::Expected<void, afbus::Error> register_adaptor() { return object_->add(describe()); }\n"
        << kIndent << "void unregister_adaptor() { object_->remove(interface_name); }\n";

    for (std::size_t i = 0; i < interface.signals.size(); ++i) {
        const Signal& signal = interface.signals[i];
        const auto names = parameter_names(names_of(signal.arguments), reserved);
        std::vector<std::string> forwarded = {signal_members[i]};
        forwarded.insert(forwarded.end(), names.begin(), names.end());
        out << "\n"
            << kIndent << "// Emits " << signal.name << describe_arguments(signal.arguments)
            << " from the object's path.\n"
            << kIndent << "afbus::Expected<void, afbus::Error> " << emit_names[i] << "("
            << join(parameters(signal.arguments, names, "const ", "& ")) << ") {\n"
            << body << "return object_->emit(" << join(forwarded) << ");\n"
            << kIndent << "}\n";
    }
    if (!interface.properties.empty()) {
        out << "\n"
            << kIndent << "// PropertiesChanged with the current values of the properties `names`.\n"
            << kIndent << "afbus::Expected<void, afbus::Error> emit_properties_changed("
            << "const std::vector<std::string>& names) {\n"
            << body << "return object_->emit_properties_changed(interface_name, names);\n"
            << kIndent << "}\n";
    }

    out << "\nprotected:\n";
    for (std::size_t m = 0; m < interface.methods.size(); ++m) {
        const Method& method = interface.methods[m];
        const auto names = parameter_names(names_of(method.in), reserved);
        auto virtual_parameters = parameters(method.in, names, "", " ");
        out << kIndent << "// " << method.name << describe_arguments(method.in);
        if (!method.out.empty()) out << " -> " << describe_arguments(method.out);
        if (method.server_async) {
            virtual_parameters.insert(virtual_parameters.begin(),
                                      "afbus::PendingReply<" + template_arguments(method.out) + "> reply");
            out << "\n"
                << kIndent << "// Answer through `reply`, now or later, exactly once.\n"
                << kIndent << "virtual void " << method_names[m] << "(" << join(virtual_parameters)
                << ") = 0;\n";
        } else {
            out << "\n"
                << kIndent << "virtual " << adaptor_results(method) << " " << method_names[m] << "("
                << join(virtual_parameters) << ") = 0;\n";
        }
    }
    for (std::size_t i = 0; i < interface.properties.size(); ++i) {
        const Property& property = interface.properties[i];
        if (!servable_property(property)) continue;
        const std::string type = *cpp_type(property.type);
        if (property.readable())
            out << kIndent << "virtual " << type << " " << property_names[i].first << "() = 0;\n";
        if (property.writable()) {
            out << kIndent << "// An Error refuses the value; the caller gets it as the error reply.\n"
                << kIndent << "virtual afbus::Expected<void, afbus::Error> " << property_names[i].second
                << "(" << type << " value) = 0;\n";
        }
    }
    out << "\nprivate:\n" << kIndent << "afbus::Object* object_;\n";
    for (std::size_t i = 0; i < interface.signals.size(); ++i) {
        const Signal& signal = interface.signals[i];
        out << kIndent << "afbus::Signal<" << template_arguments(signal.arguments) << "> "
            << signal_members[i] << "{std::string(interface_name), " << quoted(signal.name) << "};\n";
    }
    out << "};\n";
    close_namespace(out, scope);
}

}  // namespace

afbus::Expected<GeneratedHeader, std::string> generate_proxy_header(const IntrospectionData& data,
                                                                    const GeneratorInput& input) {
    if (auto ok = check_types(data); !ok) return Unexpected(std::move(ok).error());
    std::ostringstream out;
    open_header(out, input, "Proxies", "afbus/proxy.hpp");
    for (const auto& interface : data.interfaces) write_proxy(out, interface);
    return GeneratedHeader{out.str(), {}};
}

afbus::Expected<GeneratedHeader, std::string> generate_adaptor_header(const IntrospectionData& data,
                                                                      const GeneratorInput& input) {
    if (auto ok = check_types(data); !ok) return Unexpected(std::move(ok).error());
    std::ostringstream out;
    std::vector<std::string> warnings;
    open_header(out, input, "Adaptors", "afbus/typed_object.hpp");
    for (const auto& interface : data.interfaces) write_adaptor(out, interface, warnings);
    return GeneratedHeader{out.str(), std::move(warnings)};
}

}  // namespace xml2cpp
