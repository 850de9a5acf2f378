// afbus-bench: BusClient over libsystemd's sd-bus, the library most applications (and sdbus-c++) use.
#pragma once

#include <memory>
#include <string>

#include "bench_client.hpp"

namespace afbus::bench {

Result<std::unique_ptr<BusClient>> open_sdbus_client(const std::string& address);

}  // namespace afbus::bench
