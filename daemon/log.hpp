// Daemon logging: stderr and/or syslog, as chosen by --syslog / --syslog-only / --nosyslog and <syslog/>.
#pragma once

namespace afbus::daemon {

// Discard: nowhere (the whole-daemon fuzzer, which would otherwise spend its time printing).
enum class LogTarget { Stderr, Syslog, Both, Discard };
void set_log_target(LogTarget target);
[[nodiscard]] LogTarget log_target();
void set_log_verbose(bool verbose);

void log_debug(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace afbus::daemon
