// IntrospectionXml: writes org.freedesktop.DBus.Introspectable's XML (the D-Bus specification's
// "Introspection Data Format"), escaping every name. One writer for the bus driver's object and for the
// objects a libafbus application exports, so both speak the same dialect.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace afbus {

struct IntrospectionArg {
    std::string_view name;  // may be empty
    std::string_view type;  // one complete type
};

class IntrospectionXml {
public:
    IntrospectionXml();

    void begin_interface(std::string_view name);
    void end_interface();
    void method(std::string_view name, std::span<const IntrospectionArg> in, std::span<const IntrospectionArg> out);
    void signal(std::string_view name, std::span<const IntrospectionArg> args);
    // `access`: "read", "write" or "readwrite"; `emits_changed`: the EmitsChangedSignal annotation, if any.
    void property(std::string_view name, std::string_view type, std::string_view access,
                  std::string_view emits_changed = {});
    void child_node(std::string_view name);
    // org.freedesktop.DBus.Peer, .Introspectable and .Properties, as every object offers them.
    void standard_interfaces();
    [[nodiscard]] std::string finish();

private:
    void args(std::span<const IntrospectionArg> list, std::string_view direction);
    std::string xml_;
};

// Each complete type of `signature`, as an unnamed argument (views into `signature`).
std::vector<IntrospectionArg> unnamed_args(std::string_view signature);

}  // namespace afbus
