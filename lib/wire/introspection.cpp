#include "afbus/introspection.hpp"

#include "afbus/signature.hpp"

namespace afbus {
namespace {

void escaped(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
}

void attribute(std::string& out, std::string_view name, std::string_view value) {
    out += ' ';
    out += name;
    out += "=\"";
    escaped(out, value);
    out += '"';
}

}  // namespace

IntrospectionXml::IntrospectionXml()
    : xml_("<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
           "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n") {}

void IntrospectionXml::begin_interface(std::string_view name) {
    xml_ += "  <interface";
    attribute(xml_, "name", name);
    xml_ += ">\n";
}

void IntrospectionXml::end_interface() { xml_ += "  </interface>\n"; }

void IntrospectionXml::args(std::span<const IntrospectionArg> list, std::string_view direction) {
    for (const IntrospectionArg& a : list) {
        xml_ += "      <arg";
        if (!a.name.empty()) attribute(xml_, "name", a.name);
        attribute(xml_, "type", a.type);
        if (!direction.empty()) attribute(xml_, "direction", direction);
        xml_ += "/>\n";
    }
}

void IntrospectionXml::method(std::string_view name, std::span<const IntrospectionArg> in,
                              std::span<const IntrospectionArg> out) {
    xml_ += "    <method";
    attribute(xml_, "name", name);
    if (in.empty() && out.empty()) {
        xml_ += "/>\n";
        return;
    }
    xml_ += ">\n";
    args(in, "in");
    args(out, "out");
    xml_ += "    </method>\n";
}

void IntrospectionXml::signal(std::string_view name, std::span<const IntrospectionArg> list) {
    xml_ += "    <signal";
    attribute(xml_, "name", name);
    if (list.empty()) {
        xml_ += "/>\n";
        return;
    }
    xml_ += ">\n";
    args(list, {});
    xml_ += "    </signal>\n";
}

void IntrospectionXml::property(std::string_view name, std::string_view type, std::string_view access,
                                std::string_view emits_changed) {
    xml_ += "    <property";
    attribute(xml_, "name", name);
    attribute(xml_, "type", type);
    attribute(xml_, "access", access);
    if (emits_changed.empty()) {
        xml_ += "/>\n";
        return;
    }
    xml_ += ">\n      <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\"";
    attribute(xml_, "value", emits_changed);
    xml_ += "/>\n    </property>\n";
}

void IntrospectionXml::child_node(std::string_view name) {
    xml_ += "  <node";
    attribute(xml_, "name", name);
    xml_ += "/>\n";
}

void IntrospectionXml::standard_interfaces() {
    static constexpr IntrospectionArg kMachineId[] = {{"machine_uuid", "s"}};
    static constexpr IntrospectionArg kXml[] = {{"xml_data", "s"}};
    static constexpr IntrospectionArg kGetIn[] = {{"interface_name", "s"}, {"property_name", "s"}};
    static constexpr IntrospectionArg kValue[] = {{"value", "v"}};
    static constexpr IntrospectionArg kInterface[] = {{"interface_name", "s"}};
    static constexpr IntrospectionArg kProps[] = {{"props", "a{sv}"}};
    static constexpr IntrospectionArg kSetIn[] = {{"interface_name", "s"}, {"property_name", "s"}, {"value", "v"}};
    static constexpr IntrospectionArg kChanged[] = {
        {"interface_name", "s"}, {"changed_properties", "a{sv}"}, {"invalidated_properties", "as"}};
    begin_interface("org.freedesktop.DBus.Peer");
    method("Ping", {}, {});
    method("GetMachineId", {}, kMachineId);
    end_interface();
    begin_interface("org.freedesktop.DBus.Introspectable");
    method("Introspect", {}, kXml);
    end_interface();
    begin_interface("org.freedesktop.DBus.Properties");
    method("Get", kGetIn, kValue);
    method("GetAll", kInterface, kProps);
    method("Set", kSetIn, {});
    signal("PropertiesChanged", kChanged);
    end_interface();
}

std::string IntrospectionXml::finish() {
    xml_ += "</node>\n";
    return std::move(xml_);
}

std::vector<IntrospectionArg> unnamed_args(std::string_view signature) {
    std::vector<IntrospectionArg> out;
    while (!signature.empty()) {
        const std::size_t n = complete_type_length(signature);
        if (n == 0 || n > signature.size()) break;  // not a valid signature: list what is valid
        out.push_back({{}, signature.substr(0, n)});
        signature.remove_prefix(n);
    }
    return out;
}

}  // namespace afbus
