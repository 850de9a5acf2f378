// What /proc says about a process: busctl fills PROCESS, UNIT and SESSION (list) and most of status's
// fields from there, since the bus itself reports only the pid, the uid and the groups.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace afbusctl {

struct ProcessInfo {
    std::optional<std::string> comm;          // /proc/PID/comm
    std::optional<std::string> exe;           // readlink /proc/PID/exe (not readable for others' processes)
    std::optional<std::string> command_line;  // /proc/PID/cmdline, arguments joined by blanks
    std::optional<pid_t> ppid;
    std::vector<unsigned> uids;  // real, effective, saved, filesystem (empty if unreadable)
    std::vector<unsigned> gids;
    std::vector<unsigned> groups;         // supplementary
    std::optional<std::string> cgroup;    // the unified hierarchy's path ("0::" line), else name=systemd's
};

// `proc_root` is "/proc" except in tests.
ProcessInfo read_process_info(pid_t pid, const std::string& proc_root = "/proc");

// The systemd unit a cgroup path belongs to (the first *.service or *.scope component, as busctl shows
// it: "/system.slice/foo.service" → "foo.service"), and the login session ("session-3.scope" → "3").
std::optional<std::string> unit_of_cgroup(const std::string& cgroup);
std::optional<std::string> session_of_cgroup(const std::string& cgroup);

// A user name for `uid` (getpwuid), else the number.
std::string user_name(unsigned uid);

}  // namespace afbusctl
