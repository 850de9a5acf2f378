// The busconfig XML format of dbus-daemon 1.14, parsed with expat: every element and attribute it knows,
// includes and includedirs resolved relative to the including file, and a clear "file:line: reason" for
// anything invalid. Policies are kept as written for policy/ to compile.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "afbus/expected.hpp"
#include "limits.hpp"
#include "policy_source.hpp"

namespace afbus::daemon {

using PolicyRule = policy::SourceRule;
using Policy = policy::SourceContext;

struct ServiceDir {
    std::string path;
    enum class Kind { Configured, StandardSession, StandardSystem } kind = Kind::Configured;
};

struct ConfigError {
    std::string file;
    int line = 0;
    std::string reason;
    [[nodiscard]] std::string to_string() const;
};

// What an error in a file of an <includedir> does.
enum class IncludedirErrors {
    // The whole configuration fails: on reload, the one in force stays.
    Fail,
    // That file is left out and its error listed in BusConfig::skipped_files: at start, as dbus-daemon
    // does, so that one broken drop-in file (a package's, an administrator's typo) does not keep the bus
    // from starting.
    Skip,
};

struct BusConfig {
    std::string type;
    std::optional<std::string> user;
    bool fork = false;
    bool keep_umask = false;
    bool syslog = false;
    std::vector<std::string> listen;
    std::optional<std::string> pidfile;
    std::vector<std::string> auth;
    bool allow_anonymous = false;
    std::vector<ServiceDir> servicedirs;
    std::optional<std::string> servicehelper;
    Limits limits;
    std::vector<Policy> policies;
    // The policies compiled (policy/), and what the compiler warned about (unknown users and groups).
    std::vector<std::byte> policy_image;
    std::vector<std::string> policy_warnings;
    // Parsed and reported, not enforced (afbus has no SELinux or AppArmor mediation yet).
    bool has_selinux = false;
    std::optional<std::string> apparmor_mode;
    std::vector<std::string> files;  // every file read, for reporting
    std::vector<std::string> includedirs;  // every <includedir>, present or not: watched for changes
    std::vector<ConfigError> skipped_files;  // files of an <includedir> left out (IncludedirErrors::Skip)
};

// Parses `path` and everything it includes.
Expected<BusConfig, ConfigError> load_config(const std::string& path, IncludedirErrors includedir_errors = IncludedirErrors::Fail);
// Parses a document given as text (the built-in configurations); `name` stands in for its file name and
// `directory` is where its relative includes are looked up.
Expected<BusConfig, ConfigError> parse_config(const std::string& text, const std::string& name,
                                              const std::string& directory,
                                              IncludedirErrors includedir_errors = IncludedirErrors::Fail);

// The built-in configurations used when no file is installed (--session / --system on a bare machine).
const std::string& builtin_session_config();
const std::string& builtin_system_config();

}  // namespace afbus::daemon
