// Compiles the <policy> elements of a busconfig into a PolicyImage, with dbus-daemon 1.14's rules for
// which attributes combine, what "*" means, the defaults of send_requested_reply / receive_requested_reply
// and its treatment of unknown users and groups (a warning, and the rule or context is left out).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "afbus/expected.hpp"
#include "policy_image.hpp"
#include "policy_source.hpp"

namespace afbus::policy {

struct CompileError {
    std::string file;
    int line = 0;
    std::string reason;
};

// How user and group names in the config become ids. The defaults ask NSS; a decimal number is an id.
struct NameResolver {
    std::function<std::optional<uid_t>(const std::string&)> user;
    std::function<std::optional<gid_t>(const std::string&)> group;
};
NameResolver system_name_resolver();

struct CompileResult {
    std::vector<std::byte> image;
    std::vector<std::string> warnings;  // "file:line: reason", for the log
};

Expected<CompileResult, CompileError> compile_policy(const std::vector<SourceContext>& contexts,
                                                     const NameResolver& resolver = system_name_resolver());

}  // namespace afbus::policy
