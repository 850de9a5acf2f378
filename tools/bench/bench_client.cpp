// afbus-bench: choosing a BusClient implementation. The only place that knows which libraries exist.
#include "bench_client.hpp"

#include "libafbus_client.hpp"

namespace afbus::bench {

std::string_view client_library_name(ClientLibrary library) {
    switch (library) {
        case ClientLibrary::Libafbus:
            return "libafbus";
    }
    return "unknown";
}

std::optional<ClientLibrary> parse_client_library(std::string_view name) {
    for (ClientLibrary library : {ClientLibrary::Libafbus})
        if (name == client_library_name(library)) return library;
    return std::nullopt;
}

std::string client_library_unavailable_reason(ClientLibrary) {
    return {};
}

Result<std::unique_ptr<BusClient>> open_bus_client(ClientLibrary library, const std::string& address) {
    switch (library) {
        case ClientLibrary::Libafbus:
            return open_libafbus_client(address);
    }
    return failure("unknown client library");
}

}  // namespace afbus::bench
