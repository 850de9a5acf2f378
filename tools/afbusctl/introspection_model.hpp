// An object's introspection XML (org.freedesktop.DBus.Introspectable.Introspect) read into what
// `introspect` prints and `tree` walks: interfaces with their members and flags, and child nodes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"

namespace afbusctl {

struct IntrospectedMember {
    enum class Kind { Method, Property, Signal };
    Kind kind = Kind::Method;
    std::string name;
    std::string signature;  // method: in-arguments; signal: arguments; property: its type
    std::string result;     // method: out-arguments
    bool readable = false;  // properties
    bool writable = false;
    // From the standard annotations (org.freedesktop.DBus.Deprecated, .Method.NoReply,
    // .Property.EmitsChangedSignal), on the member or inherited from its interface; a property with
    // neither emits changes (the specification's default).
    bool deprecated = false;
    bool no_reply = false;
    bool constant = false;
    bool emits_change = false;
    bool emits_invalidation = false;
};

struct IntrospectedInterface {
    std::string name;
    std::vector<IntrospectedMember> members;
};

struct IntrospectedNode {
    std::vector<IntrospectedInterface> interfaces;
    std::vector<std::string> children;  // <node name="..."/> as written (relative, may hold '/')
};

// The error says where the XML is broken.
afbus::Expected<IntrospectedNode, std::string> parse_introspection(std::string_view xml);

// busctl's FLAGS column: "deprecated no-reply const emits-change emits-invalidation writable", or "-".
std::string member_flags(const IntrospectedMember& member);

// The absolute path of child `name` of `parent` ("/" + "org" → "/org"); empty if it makes no valid path.
std::string child_path(const std::string& parent, const std::string& name);

}  // namespace afbusctl
