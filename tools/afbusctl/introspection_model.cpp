#include "introspection_model.hpp"

#include <expat.h>

#include <cstring>
#include <memory>
#include <optional>

#include "afbus/names.hpp"

namespace afbusctl {

using afbus::Unexpected;

namespace {

struct ParserDeleter {
    void operator()(XML_ParserStruct* parser) const noexcept { XML_ParserFree(parser); }
};
using ParserHandle = std::unique_ptr<XML_ParserStruct, ParserDeleter>;

// Where the SAX callbacks are; depth counts <node> elements (only the top one's interfaces count).
struct ParseState {
    IntrospectedNode node;
    int node_depth = 0;
    IntrospectedInterface* interface = nullptr;
    IntrospectedMember* member = nullptr;
    // EmitsChangedSignal on the interface applies to its properties without their own.
    std::optional<std::string> interface_emits;
    bool member_has_emits = false;
    bool interface_deprecated = false;
};

const char* attribute(const XML_Char** attributes, const char* name) {
    for (int i = 0; attributes[i] != nullptr; i += 2)
        if (std::strcmp(attributes[i], name) == 0) return attributes[i + 1];
    return nullptr;
}

void apply_emits(IntrospectedMember& m, const std::string& value) {
    m.constant = value == "const";
    m.emits_change = value == "true";
    m.emits_invalidation = value == "invalidates";
}

void on_start(void* data, const XML_Char* element, const XML_Char** attributes) {
    auto& s = *static_cast<ParseState*>(data);
    const std::string_view tag = element;
    const char* name = attribute(attributes, "name");
    if (tag == "node") {
        if (++s.node_depth == 2 && name != nullptr) s.node.children.emplace_back(name);
        return;
    }
    if (s.node_depth != 1) return;
    if (tag == "interface" && name != nullptr) {
        s.node.interfaces.push_back({name, {}});
        s.interface = &s.node.interfaces.back();
        s.interface_emits.reset();
        s.interface_deprecated = false;
        return;
    }
    if (s.interface == nullptr) return;
    if ((tag == "method" || tag == "signal" || tag == "property") && name != nullptr) {
        IntrospectedMember m;
        m.name = name;
        m.kind = tag == "method" ? IntrospectedMember::Kind::Method
                 : tag == "signal" ? IntrospectedMember::Kind::Signal
                                   : IntrospectedMember::Kind::Property;
        if (m.kind == IntrospectedMember::Kind::Property) {
            if (const char* type = attribute(attributes, "type")) m.signature = type;
            const std::string access = attribute(attributes, "access") ? attribute(attributes, "access") : "";
            m.readable = access == "read" || access == "readwrite";
            m.writable = access == "write" || access == "readwrite";
        }
        m.deprecated = s.interface_deprecated;
        s.interface->members.push_back(std::move(m));
        s.member = &s.interface->members.back();
        s.member_has_emits = false;
        return;
    }
    if (tag == "arg" && s.member != nullptr) {
        const char* type = attribute(attributes, "type");
        if (type == nullptr) return;
        const char* direction = attribute(attributes, "direction");
        const bool out = direction != nullptr && std::strcmp(direction, "out") == 0;
        if (s.member->kind == IntrospectedMember::Kind::Method && out) s.member->result += type;
        else s.member->signature += type;
        return;
    }
    if (tag == "annotation" && name != nullptr) {
        const char* value_text = attribute(attributes, "value");
        const std::string value = value_text ? value_text : "";
        const std::string_view annotation = name;
        if (s.member == nullptr) {  // on the interface
            if (annotation == "org.freedesktop.DBus.Property.EmitsChangedSignal") s.interface_emits = value;
            if (annotation == "org.freedesktop.DBus.Deprecated") s.interface_deprecated = value == "true";
            return;
        }
        if (annotation == "org.freedesktop.DBus.Deprecated") s.member->deprecated = value == "true";
        else if (annotation == "org.freedesktop.DBus.Method.NoReply") s.member->no_reply = value == "true";
        else if (annotation == "org.freedesktop.DBus.Property.EmitsChangedSignal") {
            apply_emits(*s.member, value);
            s.member_has_emits = true;
        }
    }
}

void on_end(void* data, const XML_Char* element) {
    auto& s = *static_cast<ParseState*>(data);
    const std::string_view tag = element;
    if (tag == "node") {
        --s.node_depth;
    } else if (s.node_depth == 1 && tag == "interface") {
        s.interface = nullptr;
        s.member = nullptr;
    } else if (s.node_depth == 1 && (tag == "method" || tag == "signal" || tag == "property")) {
        // Without an annotation of its own a property inherits its interface's, and without that the
        // specification's default: it emits PropertiesChanged with the value ("true").
        if (s.member != nullptr && s.member->kind == IntrospectedMember::Kind::Property && !s.member_has_emits)
            apply_emits(*s.member, s.interface_emits.value_or("true"));
        s.member = nullptr;
    }
}

}  // namespace

afbus::Expected<IntrospectedNode, std::string> parse_introspection(std::string_view xml) {
    ParserHandle parser(XML_ParserCreate(nullptr));
    if (!parser) return Unexpected(std::string("Out of memory creating an XML parser"));
    ParseState state;
    XML_SetUserData(parser.get(), &state);
    XML_SetElementHandler(parser.get(), on_start, on_end);
    if (XML_Parse(parser.get(), xml.data(), static_cast<int>(xml.size()), XML_TRUE) == XML_STATUS_ERROR) {
        return Unexpected("Failed to parse introspection XML at line " +
                          std::to_string(XML_GetCurrentLineNumber(parser.get())) + ": " +
                          XML_ErrorString(XML_GetErrorCode(parser.get())));
    }
    return std::move(state.node);
}

std::string member_flags(const IntrospectedMember& m) {
    std::string out;
    const auto add = [&out](bool on, const char* word) {
        if (!on) return;
        if (!out.empty()) out += ' ';
        out += word;
    };
    add(m.deprecated, "deprecated");
    add(m.no_reply, "no-reply");
    add(m.constant, "const");
    add(m.emits_change, "emits-change");
    add(m.emits_invalidation, "emits-invalidation");
    add(m.writable, "writable");
    return out.empty() ? "-" : out;
}

std::string child_path(const std::string& parent, const std::string& name) {
    std::string path = parent == "/" ? "/" + name : parent + "/" + name;
    return afbus::is_valid_object_path(path) ? path : std::string();
}

}  // namespace afbusctl
