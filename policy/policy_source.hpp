// The <policy> elements of a busconfig, as written: what the config parser hands to the policy compiler.
// Attribute names are already checked against dbus-daemon's list; their combinations and values are
// the compiler's business (policy_compiler.hpp), which reports problems with this file and line.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace afbus::policy {

struct SourceRule {
    bool allow = true;
    std::vector<std::pair<std::string, std::string>> attributes;
    std::string file;
    int line = 0;
};

struct SourceContext {
    enum class Kind { Default, Mandatory, User, Group, AtConsole, NotAtConsole };
    Kind kind = Kind::Default;
    std::string who;  // the user or group name of a User or Group context
    std::vector<SourceRule> rules;
};

}  // namespace afbus::policy
