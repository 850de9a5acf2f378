#include "transport/af_bus_family.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <string>

#include "afbus/fd.hpp"

namespace afbus {

namespace {

constexpr int kMaxFamily = 255;

}  // namespace

std::string_view to_string(AfBusError error) noexcept {
    switch (error) {
        case AfBusError::NotLoaded:
            return "AF_BUS not available (af_bus.ko is not loaded)";
        case AfBusError::Unreadable:
            return "AF_BUS not available (cannot read /sys/module/af_bus/parameters/family)";
        case AfBusError::Malformed:
            return "AF_BUS not available (malformed /sys/module/af_bus/parameters/family)";
    }
    return "AF_BUS not available";
}

Expected<int, AfBusError> parse_af_bus_family(std::string_view text) noexcept {
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    if (text.empty() || text.size() > 3) return Unexpected(AfBusError::Malformed);
    int value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return Unexpected(AfBusError::Malformed);
        value = value * 10 + (c - '0');
    }
    if (value < 1 || value > kMaxFamily) return Unexpected(AfBusError::Malformed);
    return value;
}

Expected<int, AfBusError> af_bus_family(std::string_view sysfs_root) {
    const std::string module_dir = std::string(sysfs_root) + "/module/af_bus";
    struct stat st {};
    if (::stat(module_dir.c_str(), &st) != 0) {
        return Unexpected(errno == ENOENT || errno == ENOTDIR ? AfBusError::NotLoaded
                                                              : AfBusError::Unreadable);
    }
    if (!S_ISDIR(st.st_mode)) return Unexpected(AfBusError::NotLoaded);

    const std::string param = module_dir + "/parameters/family";
    Fd fd(::open(param.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Unexpected(AfBusError::Unreadable);

    std::array<char, 16> buffer{};
    std::size_t used = 0;
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer.data() + used, buffer.size() - used);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Unexpected(AfBusError::Unreadable);
        }
        if (n == 0) break;
        used += static_cast<std::size_t>(n);
        if (used == buffer.size()) return Unexpected(AfBusError::Malformed);
    }
    return parse_af_bus_family(std::string_view(buffer.data(), used));
}

}  // namespace afbus
