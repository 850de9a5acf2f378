// The policies the benchmarks run with: the permissive one of every afbus-bench scenario, and Debian's
// system bus policy (with or without rules that cannot apply) of the policy scenario and of bench_policy.
// Header-only so that afbus-bench and bench_policy measure exactly the same text.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace afbus::bench {

// Allow everything (a session bus's policy).
inline constexpr std::string_view kOpenPolicy = R"(  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
)";

// Debian 12's /usr/share/dbus-1/system.conf (dbus 1.14.10-1~deb12u1): its <policy> elements and its
// includedirs, in its order ("system.d" in that file is relative to /usr/share/dbus-1), so whatever this
// machine has installed in system.d is loaded. Left out: what is not policy (type, user, fork, pidfile,
// syslog, servicehelper, listen, auth, limits) and the includes of /etc/dbus-1/system.conf,
// system-local.conf and the SELinux contexts (absent on Debian by default).
inline constexpr std::string_view kSystemConfPolicy = R"(  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
)";

// What a system.d file for the benchmark's echo server would say: it may own its name, and anyone may
// call it (receiving calls is allowed by default).
inline constexpr std::string_view kBenchServicePolicy = R"(  <policy context="default">
    <allow own="org.afbus.Bench"/>
    <allow send_destination="org.afbus.Bench"/>
  </policy>
)";

// Rules that cannot apply to any message of the benchmarks, added last to the default context (so they
// are the first a last-match-wins evaluator scanning backwards meets):
//   Destination: <allow send_destination="org.irrelevant.NameK" send_interface="org.irrelevant.NameK.Iface"/>
//                (nobody owns those names);
//   Interface:   <allow send_interface="org.irrelevant.IfaceK"/> (no message has such an interface) — a
//                rule about no particular destination, which an index by name cannot rule out.
enum class ExtraRules { None, Destination, Interface };

inline std::string system_policy(ExtraRules extra = ExtraRules::None, int rules = 0) {
    std::ostringstream p;
    p << kSystemConfPolicy << kBenchServicePolicy;
    if (extra != ExtraRules::None && rules > 0) {
        p << "  <policy context=\"default\">\n";
        for (int k = 0; k < rules; ++k) {
            if (extra == ExtraRules::Destination)
                p << "    <allow send_destination=\"org.irrelevant.Name" << k
                  << "\" send_interface=\"org.irrelevant.Name" << k << ".Iface\"/>\n";
            else
                p << "    <allow send_interface=\"org.irrelevant.Iface" << k << "\"/>\n";
        }
        p << "  </policy>\n";
    }
    return p.str();
}

}  // namespace afbus::bench
