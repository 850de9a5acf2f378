#include "log.hpp"

#include <syslog.h>

#include <cstdarg>
#include <cstdio>

namespace afbus::daemon {
namespace {

LogTarget g_target = LogTarget::Stderr;
bool g_verbose = false;

void emit(int priority, const char* format, va_list args) {
    if (g_target == LogTarget::Discard) {
        // Formatted all the same, so that every argument is still read (and checked by the sanitizers).
        std::vsnprintf(nullptr, 0, format, args);
        return;
    }
    if (g_target != LogTarget::Stderr) {
        va_list copy;
        va_copy(copy, args);
        vsyslog(priority, format, copy);
        va_end(copy);
    }
    if (g_target != LogTarget::Syslog) {
        std::fprintf(stderr, "afbus-daemon: ");
        std::vfprintf(stderr, format, args);
        std::fputc('\n', stderr);
    }
}

}  // namespace

LogTarget log_target() { return g_target; }

void set_log_target(LogTarget target) {
    g_target = target;
    if (target == LogTarget::Syslog || target == LogTarget::Both) openlog("afbus-daemon", LOG_PID, LOG_DAEMON);
}

void set_log_verbose(bool verbose) { g_verbose = verbose; }

#define AFBUS_LOG_FUNCTION(name, priority, condition) \
    void name(const char* format, ...) {              \
        if (!(condition)) return;                     \
        va_list args;                                 \
        va_start(args, format);                       \
        emit(priority, format, args);                 \
        va_end(args);                                 \
    }

AFBUS_LOG_FUNCTION(log_debug, LOG_DEBUG, g_verbose)
AFBUS_LOG_FUNCTION(log_info, LOG_INFO, g_verbose)
AFBUS_LOG_FUNCTION(log_warning, LOG_WARNING, true)
AFBUS_LOG_FUNCTION(log_error, LOG_ERR, true)

#undef AFBUS_LOG_FUNCTION

}  // namespace afbus::daemon
