#include "text_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "afbus/fd.hpp"

namespace afbus::daemon {

Expected<std::string, int> read_text_file(const std::string& path) {
    const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return Unexpected(errno);
    std::string text;
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected(errno);
        if (n == 0) return text;
        text.append(buffer, static_cast<std::size_t>(n));
    }
}

Expected<void, int> write_text_file(const std::string& path, std::string_view text) {
    const Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644));
    if (!fd) return Unexpected(errno);
    while (!text.empty()) {
        const ssize_t n = ::write(fd.get(), text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected(errno);
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

}  // namespace afbus::daemon
