// The .service files of activation, read as dbus-daemon 1.14 reads them: its own small desktop-entry
// parser (bus/desktop-file.c), then the keys of the first [D-BUS Service] section; and the shell-like
// splitting it applies to Exec= when it starts the service (_dbus_shell_parse_argv). No I/O here: the
// caller reads the file (service_directory.hpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"

namespace afbus::daemon {

struct ServiceFile {
    // Taken as written: dbus-daemon does not check that Name is a valid bus name, and lists whatever it
    // says in ListActivatableNames (even "" or "not a name").
    std::string name;
    std::string exec;  // required, even with SystemdService: dbus-daemon refuses a file without it
    std::optional<std::string> user;
    std::optional<std::string> systemd_service;
    std::optional<std::string> assumed_apparmor_label;
};

struct ServiceFileError {
    int line = 0;  // 1-based; 0 when the reason concerns the whole file (encoding, a missing key)
    std::string reason;  // dbus-daemon's wording
    [[nodiscard]] std::string to_string() const;
};

// dbus-daemon refuses larger files before reading them (bus_desktop_file_load).
inline constexpr std::size_t kMaxServiceFileSize = 128 * 1024;

// Parses the text of a .service file. Every line of the file must be well-formed, in any section; the
// values come from the first [D-BUS Service] section, first occurrence of each key; keys with a locale
// suffix (Name[fr]=…) are skipped.
Expected<ServiceFile, ServiceFileError> parse_service_file(std::string_view text);

// Splits an Exec= value into argv as dbus-daemon does: single quotes keep everything literally, double
// quotes allow \" \\ \$ \` and backslash-newline, a backslash outside quotes escapes any byte, an
// unquoted # starts a comment (even in the middle of a word), and nothing is expanded. Two dbus-daemon
// quirks are kept because they decide what the service receives: trailing blanks produce a final ""
// argument, and an empty or all-blank command gives {""} (exec then fails with ENOENT) rather than an
// error. The one error is "Unclosed quotes in command line", which dbus-daemon returns to the caller as
// org.freedesktop.DBus.Error.InvalidArgs. Bytes from a NUL on are ignored, as in C.
Expected<std::vector<std::string>, std::string> split_exec_command(std::string_view exec);

}  // namespace afbus::daemon
