#include "object_commands.hpp"

#include <langinfo.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "afbus/types.hpp"
#include "call_commands.hpp"
#include "introspection_model.hpp"
#include "locale_glyphs.hpp"
#include "table.hpp"

namespace afbusctl {

using afbus::Value;

namespace {

// Whether `path` is `prefix` or below it, component-wise.
bool path_starts_with(const std::string& path, const std::string& prefix) {
    if (prefix == "/") return true;
    if (!path.starts_with(prefix)) return false;
    return path.size() == prefix.size() || path[prefix.size()] == '/';
}

void draw_subtree(std::string& out, const std::string& prefix, const std::string& path,
                  std::vector<std::string>::const_iterator at, std::vector<std::string>::const_iterator end, bool utf8) {
    while (at != end && *at == path) ++at;
    const std::string vertical = prefix + (utf8 ? "\u2502 " : "| ");
    const std::string space = prefix + "  ";
    while (at != end && path_starts_with(*at, path)) {
        bool has_more = false;
        auto next = at + 1;
        for (; next != end && path_starts_with(*next, path); ++next) {
            if (!path_starts_with(*next, *at)) {
                has_more = true;
                break;
            }
        }
        out += prefix;
        out += has_more ? (utf8 ? "\u251c\u2500" : "|-") : (utf8 ? "\u2514\u2500" : "`-");
        out += *at;
        out += '\n';
        draw_subtree(out, has_more ? vertical : space, *at, at, next, utf8);
        at = next;
    }
}


afbus::Expected<std::string, afbus::Error> introspect_xml(BusClient& bus, const std::string& service,
                                                          const std::string& path) {
    auto reply = bus.call(bus.method_call(service, path, "org.freedesktop.DBus.Introspectable", "Introspect"));
    if (!reply) return afbus::Unexpected(reply.error());
    auto xml = afbus::read_all<std::string>(*reply);
    if (!xml) return afbus::Unexpected(afbus::make_error(afbus::error_names::kInvalidArgs, "Introspect did not return a string"));
    return std::get<0>(std::move(*xml));
}

// The paths of `service` that answered Introspect, sorted; false if none did.
std::vector<std::string> find_object_paths(BusClient& bus, const std::string& service) {
    std::set<std::string> pending{"/"};
    std::set<std::string> done, failed;
    while (!pending.empty()) {
        const std::string path = *pending.begin();
        pending.erase(pending.begin());
        if (done.count(path) || failed.count(path)) continue;
        auto xml = introspect_xml(bus, service, path);
        if (!xml) {
            std::fprintf(stderr, "Failed to introspect object %s of service %s: %s\n", path.c_str(), service.c_str(),
                         xml.error().message.c_str());
            failed.insert(path);
            continue;
        }
        auto node = parse_introspection(*xml);
        if (!node) {
            std::fprintf(stderr, "Failed to parse introspection data of %s: %s\n", path.c_str(), node.error().c_str());
            failed.insert(path);
            continue;
        }
        done.insert(path);
        for (const std::string& child : node->children) {
            const std::string child_at = child_path(path, child);
            if (!child_at.empty() && !done.count(child_at)) pending.insert(child_at);
        }
    }
    return {done.begin(), done.end()};
}

int tree_of(BusClient& bus, const std::string& service) {
    const auto paths = find_object_paths(bus, service);
    std::string out;
    if (paths.empty()) out = "No objects discovered.\n";
    else if (paths.size() == 1 && paths[0] == "/") out = "Only root object discovered.\n";
    else out = draw_tree(paths, locale_is_utf8());
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

int list_of(BusClient& bus, const std::string& service) {
    for (const std::string& path : find_object_paths(bus, service)) std::printf("%s\n", path.c_str());
    return 0;
}

int kind_order(IntrospectedMember::Kind kind) {
    // busctl sorts by the TYPE column's word: method < property < signal.
    switch (kind) {
        case IntrospectedMember::Kind::Method: return 0;
        case IntrospectedMember::Kind::Property: return 1;
        case IntrospectedMember::Kind::Signal: return 2;
    }
    return 3;
}

const char* kind_word(IntrospectedMember::Kind kind) {
    switch (kind) {
        case IntrospectedMember::Kind::Method: return "method";
        case IntrospectedMember::Kind::Property: return "property";
        case IntrospectedMember::Kind::Signal: return "signal";
    }
    return "?";
}

// The values of `interface`'s properties (GetAll), as busctl's VALUE column shows them; empty if the
// object does not say.
std::map<std::string, std::string> property_values(BusClient& bus, const std::string& service, const std::string& path,
                                                   const std::string& interface) {
    std::map<std::string, std::string> out;
    auto builder = bus.method_call(service, path, "org.freedesktop.DBus.Properties", "GetAll");
    afbus::append(builder, interface);
    auto reply = bus.call(std::move(builder));
    if (!reply) return out;
    auto values = body_values(*reply);
    if (!values || values->size() != 1 || (*values)[0].type() != "a{sv}") return out;
    for (const Value& entry : (*values)[0].children())
        out[entry.children()[0].text()] = format_value_words(entry.children()[1].children()[0]);
    return out;
}

}  // namespace

std::string draw_tree(const std::vector<std::string>& sorted_paths, bool utf8) {
    std::string out;
    draw_subtree(out, "", "/", sorted_paths.begin(), sorted_paths.end(), utf8);
    return out;
}

int run_tree(BusClient& bus) {
    std::vector<std::string> services = bus.command_line().arguments;
    const bool list = bus.command_line().list_paths;
    if (!services.empty()) {
        for (const auto& s : services)
            if (!check_bus_name(s)) return 1;
    } else {
        auto names = bus.list_names("ListNames");
        if (!names) {
            std::fprintf(stderr, "Failed to get name list: %s\n", names.error().message.c_str());
            return 1;
        }
        for (const auto& name : *names)
            if (!name.starts_with(':') || bus.command_line().unique) services.push_back(name);
    }
    const bool headers = bus.command_line().arguments.empty() || services.size() > 1;
    bool first = true;
    for (const auto& service : services) {
        if (headers) {
            if (!first) std::printf("\n");
            std::printf("Service %s:\n", service.c_str());
        }
        first = false;
        if (list) list_of(bus, service);
        else tree_of(bus, service);
    }
    return 0;
}

int run_introspect(BusClient& bus) {
    const auto& args = bus.command_line().arguments;
    if (args.size() < 2 || args.size() > 3) {
        std::fprintf(stderr, "Requires service, object path and optionally interface.\n");
        return 1;
    }
    if (!check_bus_name(args[0]) || !check_object_path(args[1])) return 1;
    if (args.size() == 3 && !check_interface(args[2])) return 1;
    auto xml = introspect_xml(bus, args[0], args[1]);
    if (!xml) {
        std::fprintf(stderr, "Failed to introspect object %s of service %s: %s\n", args[1].c_str(), args[0].c_str(),
                     xml.error().message.c_str());
        return 1;
    }
    if (bus.command_line().xml_interface) {
        std::fwrite(xml->data(), 1, xml->size(), stdout);
        std::fputc('\n', stdout);  // busctl ends the dump with a newline of its own
        return 0;
    }
    auto node = parse_introspection(*xml);
    if (!node) {
        std::fprintf(stderr, "%s\n", node.error().c_str());
        return 1;
    }
    std::vector<IntrospectedInterface> interfaces = std::move(node->interfaces);
    std::sort(interfaces.begin(), interfaces.end(), [](const auto& a, const auto& b) { return a.name < b.name; });

    Table table({{"NAME"}, {"TYPE"}, {"SIGNATURE"}, {"RESULT/VALUE"}, {"FLAGS"}});
    // busctl's header widths count even with --no-legend.
    table.reserve_width(0, 4);
    table.reserve_width(1, 4);
    table.reserve_width(2, 9);
    table.reserve_width(3, 12);
    const auto dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    for (auto& interface : interfaces) {
        if (args.size() == 3 && interface.name != args[2]) continue;
        const bool has_readable = std::any_of(interface.members.begin(), interface.members.end(),
                                              [](const auto& m) { return m.readable; });
        const auto values = has_readable ? property_values(bus, args[0], args[1], interface.name)
                                         : std::map<std::string, std::string>();
        if (args.size() == 3) {
            // The interface's own row is not shown, but busctl sizes the columns with it.
            table.reserve_width(0, display_width(interface.name));
            table.reserve_width(1, 9);
        } else {
            table.add_row({interface.name, "interface", "-", "-", "-"});
        }
        std::sort(interface.members.begin(), interface.members.end(), [](const auto& a, const auto& b) {
            if (kind_order(a.kind) != kind_order(b.kind)) return kind_order(a.kind) < kind_order(b.kind);
            return a.name < b.name;
        });
        for (const auto& m : interface.members) {
            std::string result = "-";
            if (m.kind == IntrospectedMember::Kind::Method) result = dash(m.result);
            else if (m.kind == IntrospectedMember::Kind::Property)
                if (auto v = values.find(m.name); v != values.end()) result = v->second;
            table.add_row({"." + m.name, kind_word(m.kind), dash(m.signature), result, member_flags(m)});
        }
    }
    const std::string text = table.render(!bus.command_line().no_legend);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

}  // namespace afbusctl
