#include "introspection.hpp"

#include <expat.h>

#include <cstring>
#include <memory>
#include <optional>

#include "afbus/names.hpp"
#include "cpp_type.hpp"

namespace xml2cpp {

using afbus::Unexpected;

namespace {

constexpr std::string_view kDeprecated = "org.freedesktop.DBus.Deprecated";
constexpr std::string_view kNoReply = "org.freedesktop.DBus.Method.NoReply";
constexpr std::string_view kAsync = "org.freedesktop.DBus.Method.Async";

struct ParserDeleter {
    void operator()(XML_ParserStruct* parser) const noexcept { XML_ParserFree(parser); }
};
using ParserHandle = std::unique_ptr<XML_ParserStruct, ParserDeleter>;

// What the SAX callbacks build, and where they are. The member pointers point into `data`'s vectors and
// stay valid because nothing is appended to a vector while an element of it is open.
struct ParseState {
    XML_Parser parser = nullptr;
    IntrospectionData data;
    std::optional<std::string> error;  // set once, then the parser is stopped
    std::size_t error_line = 0;
    int node_depth = 0;
    int skipped_depth = 0;             // > 0 inside an element this tool does not read (<doc:doc> ...)
    bool duplicate_interface = false;  // inside an interface already read from another node
    Interface* interface = nullptr;
    Method* method = nullptr;
    Signal* signal = nullptr;
    Property* property = nullptr;
};

const char* attribute(const XML_Char** attributes, const char* name) {
    for (int i = 0; attributes[i] != nullptr; i += 2)
        if (std::strcmp(attributes[i], name) == 0) return attributes[i + 1];
    return nullptr;
}

void fail(ParseState& s, std::string reason) {
    if (s.error) return;
    s.error = std::move(reason);
    s.error_line = XML_GetCurrentLineNumber(s.parser);
    XML_StopParser(s.parser, XML_FALSE);
}

// The element's name attribute, or an error saying which element lacks it.
const char* required_name(ParseState& s, std::string_view tag, const XML_Char** attributes) {
    const char* name = attribute(attributes, "name");
    if (name == nullptr || *name == '\0') fail(s, "<" + std::string(tag) + "> without a name attribute");
    return name != nullptr && *name != '\0' ? name : nullptr;
}

bool check_type(ParseState& s, std::string_view what, const char* type) {
    if (type == nullptr) {
        fail(s, std::string(what) + " has no type attribute");
        return false;
    }
    if (auto mapped = cpp_type(type); !mapped) {
        fail(s, std::string(what) + " has type '" + type +
                    "', which is not a single complete D-Bus type: " + mapped.error());
        return false;
    }
    return true;
}

void start_interface(ParseState& s, const XML_Char** attributes) {
    const char* name = required_name(s, "interface", attributes);
    if (name == nullptr) return;
    if (!afbus::is_valid_interface_name(name)) {
        fail(s, "'" + std::string(name) + "' is not a valid interface name");
        return;
    }
    for (const auto& known : s.data.interfaces) {
        if (known.name == name) {
            s.duplicate_interface = true;
            return;
        }
    }
    s.data.interfaces.push_back({});
    s.interface = &s.data.interfaces.back();
    s.interface->name = name;
}

void start_member(ParseState& s, std::string_view tag, const XML_Char** attributes) {
    const char* name = required_name(s, tag, attributes);
    if (name == nullptr) return;
    if (!afbus::is_valid_member_name(name)) {
        fail(s, "'" + std::string(name) + "' is not a valid " + std::string(tag) + " name");
        return;
    }
    const std::string what = std::string(tag) + " " + s.interface->name + "." + name;
    if (tag == "method") {
        s.interface->methods.push_back({});
        s.method = &s.interface->methods.back();
        s.method->name = name;
    } else if (tag == "signal") {
        s.interface->signals.push_back({});
        s.signal = &s.interface->signals.back();
        s.signal->name = name;
    } else {
        const char* type = attribute(attributes, "type");
        if (!check_type(s, what, type)) return;
        const char* access_text = attribute(attributes, "access");
        if (access_text == nullptr) {
            fail(s, what + " has no access attribute (read, write or readwrite)");
            return;
        }
        const std::string_view access = access_text;
        Property::Access parsed = Property::Access::Read;
        if (access == "read")
            parsed = Property::Access::Read;
        else if (access == "write")
            parsed = Property::Access::Write;
        else if (access == "readwrite")
            parsed = Property::Access::ReadWrite;
        else {
            fail(s, what + " has access '" + std::string(access) + "', not read, write or readwrite");
            return;
        }
        s.interface->properties.push_back({});
        s.property = &s.interface->properties.back();
        s.property->name = name;
        s.property->type = type;
        s.property->access = parsed;
    }
}

void start_argument(ParseState& s, const XML_Char** attributes) {
    const char* name_text = attribute(attributes, "name");
    const std::string name = name_text != nullptr ? name_text : "";
    const std::string member = s.method != nullptr ? s.method->name : s.signal->name;
    const std::string what = "argument " + (name.empty() ? std::string("(unnamed)") : "'" + name + "'") +
                             " of " + s.interface->name + "." + member;
    const char* type = attribute(attributes, "type");
    if (!check_type(s, what, type)) return;
    const char* direction_text = attribute(attributes, "direction");
    const std::string_view direction = direction_text != nullptr ? direction_text : "";
    if (s.signal != nullptr) {
        if (!direction.empty() && direction != "out") {
            fail(s, what + " has direction '" + std::string(direction) +
                        "': a signal's arguments are all 'out'");
            return;
        }
        s.signal->arguments.push_back({name, type});
        return;
    }
    if (direction.empty() || direction == "in")
        s.method->in.push_back({name, type});
    else if (direction == "out")
        s.method->out.push_back({name, type});
    else
        fail(s, what + " has direction '" + std::string(direction) + "', not in or out");
}

void start_annotation(ParseState& s, const XML_Char** attributes) {
    const char* name = required_name(s, "annotation", attributes);
    if (name == nullptr) return;
    const char* value_text = attribute(attributes, "value");
    if (value_text == nullptr) {
        fail(s, "annotation " + std::string(name) + " has no value attribute");
        return;
    }
    Annotation annotation{name, value_text};
    const bool on = annotation.value == "true";
    std::vector<Annotation>* list = nullptr;
    if (s.method != nullptr) {
        if (annotation.name == kDeprecated) s.method->deprecated = on;
        if (annotation.name == kNoReply) s.method->no_reply = on;
        if (annotation.name == kAsync)
            s.method->server_async = annotation.value == "server" || annotation.value == "clientserver";
        list = &s.method->annotations;
    } else if (s.signal != nullptr) {
        if (annotation.name == kDeprecated) s.signal->deprecated = on;
        list = &s.signal->annotations;
    } else if (s.property != nullptr) {
        if (annotation.name == kDeprecated) s.property->deprecated = on;
        list = &s.property->annotations;
    } else {
        if (annotation.name == kDeprecated) s.interface->deprecated = on;
        list = &s.interface->annotations;
    }
    list->push_back(std::move(annotation));
}

void on_start(void* data, const XML_Char* element, const XML_Char** attributes) {
    auto& s = *static_cast<ParseState*>(data);
    if (s.error) return;
    const std::string_view tag = element;
    if (s.skipped_depth > 0 || s.duplicate_interface) {
        ++s.skipped_depth;
        return;
    }
    const bool in_member = s.method != nullptr || s.signal != nullptr || s.property != nullptr;
    if (tag == "node" && s.interface == nullptr) {
        ++s.node_depth;
    } else if (tag == "interface" && s.node_depth > 0 && s.interface == nullptr) {
        start_interface(s, attributes);
    } else if ((tag == "method" || tag == "signal" || tag == "property") && s.interface != nullptr &&
               !in_member) {
        start_member(s, tag, attributes);
    } else if (tag == "arg" && (s.method != nullptr || s.signal != nullptr)) {
        start_argument(s, attributes);
        ++s.skipped_depth;  // an <arg> may hold annotations and docs: not read
    } else if (tag == "annotation" && (s.interface != nullptr)) {
        start_annotation(s, attributes);
        ++s.skipped_depth;
    } else if (s.node_depth == 0) {
        fail(s, "the document's root element is <" + std::string(tag) + ">, not <node>");
    } else {
        ++s.skipped_depth;  // documentation and extensions
    }
}

void on_end(void* data, const XML_Char* element) {
    auto& s = *static_cast<ParseState*>(data);
    if (s.error) return;
    if (s.skipped_depth > 0) {
        --s.skipped_depth;
        return;
    }
    const std::string_view tag = element;
    if (tag == "interface" && s.duplicate_interface) {
        s.duplicate_interface = false;
    } else if (tag == "node") {
        --s.node_depth;
    } else if (tag == "interface") {
        s.interface = nullptr;
    } else if (tag == "method") {
        s.method = nullptr;
    } else if (tag == "signal") {
        s.signal = nullptr;
    } else if (tag == "property") {
        s.property = nullptr;
    }
}

}  // namespace

std::string ParseError::message() const {
    return file + ":" + std::to_string(line) + ": " + reason;
}

afbus::Expected<IntrospectionData, ParseError> parse_introspection(std::string_view xml,
                                                                   std::string_view file) {
    ParserHandle parser(XML_ParserCreate(nullptr));
    if (!parser) return Unexpected(ParseError{std::string(file), 0, "out of memory creating an XML parser"});
    ParseState state;
    state.parser = parser.get();
    XML_SetUserData(parser.get(), &state);
    XML_SetElementHandler(parser.get(), on_start, on_end);
    const auto status = XML_Parse(parser.get(), xml.data(), static_cast<int>(xml.size()), XML_TRUE);
    if (state.error)
        return Unexpected(ParseError{std::string(file), state.error_line, std::move(*state.error)});
    if (status == XML_STATUS_ERROR) {
        return Unexpected(
            ParseError{std::string(file), XML_GetCurrentLineNumber(parser.get()),
                       std::string("malformed XML: ") + XML_ErrorString(XML_GetErrorCode(parser.get()))});
    }
    return std::move(state.data);
}

}  // namespace xml2cpp
