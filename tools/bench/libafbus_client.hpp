// afbus-bench: BusClient over libafbus's Connection.
#pragma once

#include <memory>
#include <string>

#include "bench_client.hpp"

namespace afbus::bench {

Result<std::unique_ptr<BusClient>> open_libafbus_client(const std::string& address);

}  // namespace afbus::bench
