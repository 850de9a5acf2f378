// afbus-bench: choosing a BusClient implementation. The only place that knows which libraries exist;
// sd-bus is there when the build found libsystemd (AFBUS_BENCH_SD_BUS, set by tools/meson.build).
#include "bench_client.hpp"

#include <poll.h>

#include <cerrno>

#include "libafbus_client.hpp"
#if AFBUS_BENCH_SD_BUS
#include "sdbus_client.hpp"
#endif

namespace afbus::bench {

Result<void> BusClient::serve() {
    // Processes before it waits: see process().
    for (;;) {
        if (auto r = process(); !r) return r;
        pollfd ready{fd(), poll_events(), 0};
        while (::poll(&ready, 1, -1) < 0 && errno == EINTR) {
        }
    }
}

std::string_view client_library_name(ClientLibrary library) {
    switch (library) {
        case ClientLibrary::Libafbus:
            return "libafbus";
        case ClientLibrary::SdBus:
            return "sd-bus";
    }
    return "unknown";
}

std::optional<ClientLibrary> parse_client_library(std::string_view name) {
    for (ClientLibrary library : {ClientLibrary::Libafbus, ClientLibrary::SdBus})
        if (name == client_library_name(library)) return library;
    return std::nullopt;
}

std::string client_library_unavailable_reason(ClientLibrary library) {
#if !AFBUS_BENCH_SD_BUS
    if (library == ClientLibrary::SdBus) return "afbus-bench was built without libsystemd";
#else
    (void)library;
#endif
    return {};
}

Result<std::unique_ptr<BusClient>> open_bus_client(ClientLibrary library, const std::string& address) {
    switch (library) {
        case ClientLibrary::Libafbus:
            return open_libafbus_client(address);
        case ClientLibrary::SdBus:
#if AFBUS_BENCH_SD_BUS
            return open_sdbus_client(address);
#else
            break;
#endif
    }
    return failure(client_library_unavailable_reason(library));
}

}  // namespace afbus::bench
